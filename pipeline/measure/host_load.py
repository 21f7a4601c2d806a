"""How busy this machine was while we measured it: load average and CPU steal, with warnings when they were high.

On a shared or virtual machine other work and the hypervisor take cycles from a benchmark; the numbers are recorded
beside the latencies so a reader can tell a slow model from a busy machine.
"""

from __future__ import annotations

import os
from pathlib import Path

STEAL_WARN = 0.02  # share of CPU time the hypervisor gave to other guests
STAT = Path("/proc/stat")


def snapshot() -> dict:
    """The 1-minute load average now and the cumulative CPU ticks (total, steal) since boot (0 without /proc)."""
    total = steal = 0
    try:
        fields = STAT.read_text().splitlines()[0].split()
        if fields[0] == "cpu":
            ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal (guest is in user)
            total, steal = sum(ticks), ticks[7] if len(ticks) > 7 else 0
    except (OSError, IndexError, ValueError):
        pass
    return {"load1": os.getloadavg()[0], "ticks": total, "steal_ticks": steal}


def summary(snapshots: list[dict], threads: int) -> dict:
    """Load and steal over a measurement from snapshots taken at its start, between its parts and at its end."""
    cores = os.cpu_count() or 1
    first, last = snapshots[0], snapshots[-1]
    ticks = last["ticks"] - first["ticks"]
    steal = (last["steal_ticks"] - first["steal_ticks"]) / ticks if ticks > 0 else None
    load_max = max(s["load1"] for s in snapshots)
    warnings = []
    # the load includes the benchmark's own `threads`; more runnable work than cores means it waited for a CPU
    if load_max > cores:
        warnings.append(f"load average reached {load_max:.1f} on {cores} cores (the benchmark used {threads}): "
                        "other work competed for the CPU; trust the rounds' minima and the speed-up intervals more "
                        "than single p50s")
    if steal is not None and steal > STEAL_WARN:
        warnings.append(f"CPU steal was {100 * steal:.1f}% of CPU time: the hypervisor ran other guests on these cores")
    return {"cpu_count": cores, "load1_before": first["load1"], "load1_after": last["load1"], "load1_max": load_max,
            "steal_fraction": steal, "warnings": warnings}

"""Time one artifact in a fresh process: load, warm-up, N timed runs, peak memory. Prints one JSON line.

Run by the benchmark stage as `python -m pipeline.bench_worker '<json>'` so that one runtime's allocations, thread
pools and caches never leak into the next one's numbers.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc (VmHWM: peak RSS since exec; getrusage's ru_maxrss is not
    reset by exec and can report the parent's peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(args: dict) -> dict:
    from pipeline.artifact import Artifact
    from pipeline.runtimes import session_class
    from pipeline.stats import latency_summary

    artifact = Artifact.from_dict(args["artifact"])
    x = np.load(args["input"])
    cls = session_class(artifact.format)  # import the runtime library outside the timed load
    rss_before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    session = cls(artifact, args["threads"])
    session.run(x)  # first inference belongs to loading: allocations, weight packing
    load_ms = (time.perf_counter() - t0) * 1000
    for _ in range(args["warmup"]):
        session.run(x)
    times = []
    for _ in range(args["runs"]):
        t = time.perf_counter_ns()
        session.run(x)
        times.append((time.perf_counter_ns() - t) / 1e6)
    return {
        "runtime": session.runtime,
        "threads": args["threads"],
        "warmup": args["warmup"],
        "load_ms": load_ms,
        "latency_ms": latency_summary(times),
        "rss_before_load_mb": rss_before / 1024,
        "peak_rss_mb": _status_kb("VmHWM") / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))

"""Latency in interleaved rounds of fresh processes: one round runs every artifact once, each in its own process
(A B C ... A B C ...), so that a slow spell of a shared machine hits all of them alike instead of one. Speed-ups
against the fp32 artifact of the same runtime are ratios of median p50s with a bootstrap interval over the rounds;
rounds stop once every interval is narrow enough, at max_rounds, or when max_seconds have passed.

The benchmark stage and `make bench-large` both time with these.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time

from pipeline.artifacts.artifact import Artifact
from pipeline.core.proc import python_module
from pipeline.core.proc import run as run_process
from pipeline.core.progress import progress
from pipeline.measure import fork_server, host_load
from pipeline.measure.stats import median_round, speedup_interval
from pipeline.runtimes import RUNTIME_OF_FORMAT, TORCH_LINKED


def baselines(artifacts: list[Artifact]) -> dict[str, str]:
    """Artifact name -> the name of its baseline: the unpruned, unquantized fp32 artifact of the same runtime
    (torch-fp32 for the torch runtime). Baselines themselves and artifacts without one are left out."""
    base = {}
    for a in artifacts:
        rt = RUNTIME_OF_FORMAT[a.format]
        if a.precision == "fp32" and not a.pruned and not a.lowrank and a.quantization == "none" and rt not in base:
            base[rt] = a.name
    return {a.name: base[RUNTIME_OF_FORMAT[a.format]] for a in artifacts
            if RUNTIME_OF_FORMAT[a.format] in base and base[RUNTIME_OF_FORMAT[a.format]] != a.name}


FORKED = TORCH_LINKED  # runtimes measured in a process forked from the preloaded server (fork_server)


def _measure(art: Artifact, input_path, bench: dict) -> dict:
    args = {"artifact": art.to_dict(), "input": str(input_path), "threads": bench["threads"],
            "warmup": bench["warmup"], "runs": bench["runs"]}
    if RUNTIME_OF_FORMAT[art.format] in FORKED:
        return fork_server.measure_forked(args, f"benchmark: {art.name}", timeout=1800)
    proc = run_process(python_module("pipeline.measure.bench_worker", json.dumps(args)), what=f"benchmark: {art.name}",
                       timeout=1800)
    return {**json.loads(proc.stdout.decode().strip().splitlines()[-1]), "process": "a new Python process"}


def speedups(rounds: dict[str, list[dict]], base_of: dict[str, str]) -> dict[str, dict]:
    """Each artifact's speed-up over its baseline from the per-round p50s, with its bootstrap interval."""
    p50s = {name: [r["latency_ms"]["p50"] for r in rs] for name, rs in rounds.items()}
    return {name: {"baseline": base, **speedup_interval(p50s[base], p50s[name])} for name, base in base_of.items()}


def _stop_reason(done: int, elapsed: float, speed: dict[str, dict], bench: dict) -> str | None:
    """Why no further round starts after `done` rounds, or None to run another (min_rounds always run)."""
    if done < bench["min_rounds"]:
        return None
    if all(s["rel_width"] <= bench["ci_rel_width"] for s in speed.values()):
        return "intervals narrow enough"
    if done >= bench["max_rounds"]:
        return "max_rounds"
    if elapsed >= bench["max_seconds"]:
        return "max_seconds"
    return None


def round_result(art: Artifact, rs: list[dict], speedup: dict | None) -> dict:
    """The median round's measurement of one artifact, with every round's p50 and minimum beside it."""
    res = dict(rs[median_round([r["latency_ms"]["p50"] for r in rs])])
    res.update({"format": art.format, "precision": art.precision, "size_bytes": art.size_bytes,
                "device": "host",  # measured here; a device target's own numbers come from on_device
                "rounds": [{"p50": r["latency_ms"]["p50"], "min": r["latency_ms"]["min"],
                            "prepare_p50": r["prepare_ms"]["p50"]} for r in rs],
                "speedup": speedup})
    return res


def run_rounds(artifacts: list[Artifact], input_path, bench: dict, base_of: dict[str, str]):
    """Interleaved rounds, one fresh process per artifact per round, until _stop_reason says stop."""
    rounds: dict[str, list[dict]] = {a.name: [] for a in artifacts}
    loads, start, speed, stopped = [host_load.snapshot()], time.monotonic(), {}, None
    with progress(total=len(artifacts) * bench["max_rounds"], desc="benchmark", unit="run") as bar:
        try:
            while stopped is None:
                for art in artifacts:
                    rounds[art.name].append(_measure(art, input_path, bench))
                    bar.update(1)
                loads.append(host_load.snapshot())
                speed = speedups(rounds, base_of)
                stopped = _stop_reason(len(loads) - 1, time.monotonic() - start, speed, bench)
        finally:
            fork_server.stop()  # its imports of torch and ExecuTorch are not kept beyond the rounds
    return rounds, loads, speed, stopped, time.monotonic() - start


@contextlib.contextmanager
def exclusive_machine(log):
    """With PIPELINE_BENCH_LOCK set (search workers sharing a machine), one benchmark times at a time: the others'
    conversions may still run, but never another timing loop."""
    path = os.environ.get("PIPELINE_BENCH_LOCK")
    if not path:
        yield
        return
    with open(path, "a") as handle:
        waited = time.monotonic()
        fcntl.flock(handle, fcntl.LOCK_EX)
        if time.monotonic() - waited > 1:
            log.info("benchmark: waited %.0f s for another worker's benchmark to finish", time.monotonic() - waited)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

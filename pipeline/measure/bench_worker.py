"""Time one artifact in a fresh process: load, warm-up, N timed runs, peak memory. Prints one JSON line.

The timed runs are the runtime's invoke alone, on an input prepared before the loop: our own layout change and
int8 quantization of the input (and dequantization of the output) are timed apart, as `prepare_ms`, because an app
pays them once per frame whatever the model costs.

Run by the benchmark stage as `python -m pipeline.measure.bench_worker '<json>'` so that one runtime's allocations,
thread pools and caches never leak into the next one's numbers. Artifacts of the runtimes that live in torch's process
(PyTorch eager, ExecuTorch) are measured in a process forked from a server that has imported torch and ExecuTorch
and done nothing else (`fork_server.measure_forked`).
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


def _prepare_times(session, x: list[np.ndarray], raw: list[np.ndarray], runs: int) -> list[float]:
    """Milliseconds of our own work around each invoke: preparing the inputs and turning the outputs into floats."""
    times = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        session.prepare(x)
        session.to_outputs(raw)
        times.append((time.perf_counter_ns() - t) / 1e6)
    return times


def save_inputs(path, xs: list[np.ndarray]) -> None:
    """One batch of the model's inputs for a worker: an .npz of x0, x1, ... in input order."""
    np.savez(path, **{f"x{i}": x for i, x in enumerate(xs)})


def load_inputs(path) -> list[np.ndarray]:
    """The inputs `save_inputs` wrote (a one-input .npy works too)."""
    if str(path).endswith(".npy"):
        return [np.load(path, allow_pickle=False)]
    with np.load(path, allow_pickle=False) as npz:
        return [npz[f"x{i}"] for i in range(len(npz.files))]


def measure(args: dict) -> dict:
    """Load the artifact of `args` and time it; the result is the JSON line the benchmark stage reads."""
    from pipeline.artifacts.artifact import Artifact
    from pipeline.measure.stats import latency_summary
    from pipeline.runtimes import session_class

    artifact = Artifact.from_dict(args["artifact"])
    x = load_inputs(args["input"])
    cls = session_class(artifact.format)  # import the runtime library outside the timed load
    rss_before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    session = cls(artifact, args["threads"])
    session.run_all(x)  # first inference belongs to loading: allocations, weight packing
    load_ms = (time.perf_counter() - t0) * 1000
    prepared = session.prepare(x)
    for _ in range(args["warmup"]):
        raw = session.invoke(prepared)
    times = []
    for _ in range(args["runs"]):
        t = time.perf_counter_ns()
        raw = session.invoke(prepared)
        times.append((time.perf_counter_ns() - t) / 1e6)
    return {
        "runtime": session.runtime,
        "threads": args["threads"],
        "warmup": args["warmup"],
        "load_ms": load_ms,
        "latency_ms": latency_summary(times),
        "prepare_ms": latency_summary(_prepare_times(session, x, raw, args["runs"])),
        "rss_before_load_mb": rss_before / 1024,
        "peak_rss_mb": _status_kb("VmHWM") / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))

"""TFLite's `benchmark_model` on Android phones: its command line, and the timings read from what it prints.

The phone path for .tflite timings (no Python there). The lines it prints, with or without `INFO: ` before:

    count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 ...
    Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): ...
    Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961

The first `count=` line is the warmup phase, the last one the timed runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.core.errors import ToolError

_TIMINGS = re.compile(
    r"Inference timings in us: Init: (?P<init>[\d.]+), First inference: (?P<first>[\d.]+), "
    r"Warmup \(avg\): (?P<warmup>[\d.e+]+), Inference \(avg\): (?P<inference>[\d.e+]+)"
)
_STATS = re.compile(r"^(?:INFO: )?count=\d+ .*$", re.MULTILINE)
_MEMORY = re.compile(r"\(MB\): init=(?P<init>[\d.]+) overall=(?P<overall>[\d.]+)")


@dataclass
class BenchmarkModelTimings:
    """Microseconds as benchmark_model reports them; `runs` holds count/min/max/avg/std/(p5/median/p95)."""

    init_us: float
    first_inference_us: float
    warmup_avg_us: float
    inference_avg_us: float
    runs: dict[str, float] = field(default_factory=dict)
    warmup: dict[str, float] = field(default_factory=dict)
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None


def benchmark_model_argv(binary: str, model: str, *, threads: int, warmup: int, runs: int) -> list[str]:
    """A benchmark_model command that does exactly `warmup` + `runs` iterations on `threads` threads."""
    return [
        binary,
        f"--graph={model}",
        f"--num_threads={threads}",
        f"--warmup_runs={warmup}",
        f"--num_runs={runs}",
        # Its defaults keep running until a minimum time has passed; zero makes the counts exact.
        "--warmup_min_secs=0",
        "--min_secs=0",
        "--use_xnnpack=true",
    ]


def parse_benchmark_model(text: str) -> BenchmarkModelTimings:
    """Read benchmark_model's output; ToolError with its last line when it printed no timings."""
    found = _TIMINGS.search(text)
    if found is None:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        raise ToolError(f"benchmark_model: no timings in its output: {lines[-1] if lines else 'no output'}")
    stats = [_stat_fields(m.group(0)) for m in _STATS.finditer(text)]
    memory = _MEMORY.search(text)
    return BenchmarkModelTimings(
        init_us=float(found["init"]),
        first_inference_us=float(found["first"]),
        warmup_avg_us=float(found["warmup"]),
        inference_avg_us=float(found["inference"]),
        runs=stats[-1] if stats else {},
        warmup=stats[0] if len(stats) > 1 else {},
        memory_init_mb=float(memory["init"]) if memory else None,
        memory_overall_mb=float(memory["overall"]) if memory else None,
    )


def _stat_fields(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.e+-]+)", line)}

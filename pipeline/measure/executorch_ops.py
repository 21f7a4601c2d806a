"""Per-operator time of a .pte: ExecuTorch's ETDump read by its Inspector, one row per event, grouped by kernel.

The program runs in ExecuTorch's Python runtime (the C++ runtime phones use) with event tracing on. XNNPACK reports
each kernel it ran inside the delegate call (e.g. "Convolution (NHWC, QC8) IGEMM #3"); operators left outside the
delegate appear as their own events. Times come from the runtime's clock, per run; the first `warmup` runs are left
out of every figure.

For example::

    result = profile_program(Path("model.pte"), torch.zeros(1, 3, 224, 224), runs=20, threads=1)
    result["kernels"][0]  # {"kernel": "Convolution (NHWC, QC8) IGEMM", "p50_ms": ..., "share": ..., ...}
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import torch

# Events that wrap others: their time is the sum of the kernels inside plus overhead, so they are not rows.
WRAPPERS = ("Method::execute", "DELEGATE_CALL")
OVERHEAD = "runtime and delegate overhead"
# XNNPACK's datatype tags in kernel names: QC8/QS8/QD8/QU8 int8 (X8 an 8-bit move), F32/X32 float, F16/X16 half.
_PRECISION = (("int8", ("QC8", "QS8", "QD8", "QU8", "QC4", "X8")), ("fp16", ("F16", "X16")), ("fp32", ("F32", "X32")))


def kernel_of(event_name: str) -> str:
    """An XNNPACK event name without its instance number: "Convolution (NHWC, QC8) IGEMM #3" -> "... IGEMM"."""
    return re.sub(r"\s+#\d+$", "", event_name)


def precision_of(kernel: str) -> str:
    """int8, fp16 or fp32 from the datatype tags in the kernel's name; "-" when it names none."""
    tags = set(re.findall(r"[A-Z]+\d+[A-Z]*", kernel))
    return next((p for p, names in _PRECISION if tags & set(names)), "-")


def category_of(kernel: str, delegated: bool) -> str:
    """What kind of work a kernel is: the groups the issue asks about (compute, quantize, layout, not delegated)."""
    if not delegated:
        return "not delegated (portable kernel)" if kernel != OVERHEAD else OVERHEAD
    if kernel.startswith(("Convolution", "Deconvolution")):
        return f"convolution {precision_of(kernel)}"
    if kernel.startswith("Fully Connected"):
        return f"fully connected {precision_of(kernel)}"
    if kernel.startswith("Convert"):
        return "convert (quantize/dequantize)"
    if kernel.startswith(("Transpose", "Copy", "Static Reshape", "Static Transpose")):
        return "layout (transpose/copy/reshape)"
    precision = precision_of(kernel)
    return "other XNNPACK" if precision == "-" else f"other XNNPACK {precision}"


def program_backends(path: Path) -> tuple[list[str], list[str]]:
    """(delegate backends, operators left to the portable kernels) that the program file itself declares."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(path.read_bytes()).program
    plan = program.execution_plan[0]
    return sorted({d.id for d in plan.delegates}), sorted({op.name for op in plan.operators})


def _trace(path: Path, x: torch.Tensor, runs: int, threads: int, work: Path) -> Path:
    from executorch.runtime import Runtime

    from pipeline.runtimes.executorch_session import set_threads

    set_threads(threads)
    program = Runtime.get().load_program(path, enable_etdump=True)
    method = program.load_method("forward")
    for _ in range(runs):
        method.execute([x])
    etdump = work / "trace.etdp"
    program.write_etdump_result_to_file(str(etdump), str(work / "debug.bin"))
    return etdump


def _rows(etdump: Path, warmup: int, backend: str | None) -> tuple[list[dict], float]:
    """(one row per operator event, p50 ms of the whole execute), runs before `warmup` dropped."""
    from executorch.devtools import Inspector

    rows, execute_ms = [], 0.0
    for block in Inspector(etdump_path=str(etdump)).event_blocks:
        for event in block.events:
            if event.perf_data is None or len(event.perf_data.raw) <= warmup:
                continue  # Method::init and load_method: one-off events of the loading block
            p50 = float(np.median(event.perf_data.raw[warmup:]))
            if event.name == "Method::execute":
                execute_ms = p50
            if event.name in WRAPPERS:
                continue
            delegated = bool(event.is_delegated_op)
            kernel = kernel_of(event.name) if delegated else (event.op_types[0] if event.op_types else event.name)
            rows.append({"name": event.name, "kernel": kernel, "category": category_of(kernel, delegated),
                         "delegated": delegated,
                         "backend": (event.delegate_backend_name or backend) if delegated else None,
                         "count": 1, "p50_ms": p50})
    return rows, execute_ms


def grouped(rows: list[dict], key: str) -> list[dict]:
    """Rows summed per `key` ("kernel": every instance of "Convolution (NHWC, QC8) IGEMM"; "category": convolution
    int8, convert, layout, not delegated, ...), slowest first."""
    groups: dict[str, dict] = {}
    for r in rows:
        g = groups.setdefault(r[key], {key: r[key], "category": r["category"], "delegated": r["delegated"],
                                       "count": 0, "p50_ms": 0.0, "share": 0.0})
        g["count"] += r["count"]
        g["p50_ms"] += r["p50_ms"]
        g["share"] += r["share"]
    return sorted(groups.values(), key=lambda g: -g["p50_ms"])


def profile_program(path: Path, x: torch.Tensor, runs: int = 20, threads: int = 1, warmup: int = 2) -> dict:
    """Run the .pte `runs + warmup` times on `x` with ETDump on; its events as rows, per kernel and per category.

    Each row's share is of the sum of all rows, one of which is the time the events do not cover (runtime and
    delegate overhead: the execute's p50 less the operators' p50s), so shares add to 1.
    """
    backends, portable_ops = program_backends(path)
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        etdump = _trace(path, x, runs + warmup, threads, Path(tmp))
        rows, execute_ms = _rows(etdump, warmup, backends[0] if len(backends) == 1 else None)
    covered = sum(r["p50_ms"] for r in rows)
    rows.append({"name": OVERHEAD, "kernel": OVERHEAD, "category": OVERHEAD, "delegated": False, "backend": None,
                 "count": 1, "p50_ms": max(0.0, execute_ms - covered)})
    total = sum(r["p50_ms"] for r in rows) or 1.0
    for r in rows:
        r["share"] = r["p50_ms"] / total
    return {"runtime": "executorch", "runs": runs, "warmup": warmup, "threads": threads,
            "execute_p50_ms": execute_ms, "backends": backends, "portable_operators": portable_ops,
            "events": rows, "kernels": grouped(rows, "kernel"), "categories": grouped(rows, "category"),
            "timing": "ETDump (ExecuTorch's event tracer) read by executorch.devtools.Inspector, p50 over the timed "
                      "runs; XNNPACK reports its kernels to the microsecond"}

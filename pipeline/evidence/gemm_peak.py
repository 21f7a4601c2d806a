"""The single-thread GEMM limit of this machine, fp32 and int8: what `make bench-large` compares each model with.

A large square matrix product is about the most favourable work a CPU core does (compute-bound, cache-blocked by a
vendor kernel), so its rate is a practical peak for the convolutions of a network. Each GEMM runs in a fresh child
process with one thread (torch and ONNX Runtime), `repeats` times after one warm-up; the best rate counts. fp32:
torch.matmul (oneDNN/MKL), ONNX Runtime MatMul (MLAS) and XNNPACK's fully-connected kernel (an n x n Linear on a
1 x n x n input, lowered to a .pte by the pipeline's `lower`: the kernel family LiteRT and ExecuTorch run). int8:
torch._int_mm (int8 x int8 -> int32), ONNX Runtime MatMulInteger (MLAS, uint8 x int8 -> int32) and the same Linear
quantized by the pipeline's PT2E `ptq` and lowered to XNNPACK (QS8 GEMM; its input quantize and output dequantize,
O(n^2), are inside the time). The peak of a precision is the fastest of its kernels.

    python -m pipeline.evidence.gemm_peak 2048
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from pipeline.core.proc import python_module
from pipeline.core.proc import run as run_process

KERNELS = {
    "fp32": ("torch.matmul", "onnxruntime MatMul", "executorch XNNPACK Linear"),
    "int8": ("torch._int_mm", "onnxruntime MatMulInteger", "executorch XNNPACK PT2E int8 Linear"),
}


def _torch_gemm(kernel: str, n: int):
    import torch

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    if kernel == "torch.matmul":
        a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        return lambda: torch.matmul(a, b)
    a = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
    b = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=gen)
    return lambda: torch._int_mm(a, b)


def _ort_gemm(kernel: str, n: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    if kernel == "onnxruntime MatMul":
        a_type, b_type, out_type, op = TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT, "MatMul"
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    else:
        a_type, b_type, out_type, op = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32, "MatMulInteger"
        a = rng.integers(0, 256, (n, n), dtype=np.uint8)
        b = rng.integers(-128, 128, (n, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])], "gemm",
        [helper.make_tensor_value_info("a", a_type, [n, n])], [helper.make_tensor_value_info("y", out_type, [n, n])],
        [helper.make_tensor("b", b_type, [n, n], b.tobytes(), raw=True)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"a": a})


def _executorch_gemm(kernel: str, n: int):
    import tempfile
    from pathlib import Path

    import torch
    from executorch.runtime import Runtime

    from pipeline.compression.quantization import ptq
    from pipeline.converters.executorch_lowering import lower

    torch.set_num_threads(1)
    torch.manual_seed(0)
    linear = torch.nn.Linear(n, n, bias=False).eval()
    x = torch.randn(1, n, n)
    model = ptq(linear, torch.randn(2, n, n)) if "int8" in kernel else linear
    path = Path(tempfile.mkdtemp(prefix="gemm-peak-")) / "gemm.pte"
    path.write_bytes(lower(model, x)[0])
    method = Runtime.get().load_program(str(path)).load_method("forward")
    return lambda: method.execute([x])


def measure_kernel(kernel: str, n: int, repeats: int) -> dict:
    """Best and median GMAC/s of one n x n x n product with one thread, in this process."""
    makers = {"torch": _torch_gemm, "onnxruntime": _ort_gemm, "executorch": _executorch_gemm}
    call = makers[kernel.split()[0].split(".")[0]](kernel, n)
    call()  # warm-up: weight packing, allocations
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    macs = n ** 3
    return {"kernel": kernel, "n": n, "repeats": repeats, "best_gmacs": macs / min(seconds) / 1e9,
            "median_gmacs": macs / float(np.median(seconds)) / 1e9}


def measure(n: int = 2048, repeats: int = 5) -> dict:
    """{"fp32": {...}, "int8": {...}}: each precision's peak (the faster kernel's best) and every kernel's numbers,
    each kernel timed in a fresh process."""
    out = {}
    for precision, kernels in KERNELS.items():
        rows = []
        for kernel in kernels:
            args = json.dumps({"kernel": kernel, "n": n, "repeats": repeats})
            proc = run_process(python_module("pipeline.evidence.gemm_peak", "--child", args),
                               what=f"gemm peak: {kernel}", timeout=600)
            rows.append(json.loads(proc.stdout.decode().strip().splitlines()[-1]))
        best = max(rows, key=lambda r: r["best_gmacs"])
        out[precision] = {"gmacs": best["best_gmacs"], "kernel": best["kernel"], "kernels": rows}
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        a = json.loads(sys.argv[2])
        print(json.dumps(measure_kernel(a["kernel"], a["n"], a["repeats"])))
    else:
        print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2048), indent=1))

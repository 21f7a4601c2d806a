"""What float fallback wins back and costs, on a model built to break int8 (`make evidence-fallback`).

The model: a small CNN trained on a synthetic 4-class task, then one tensor given a huge outlier channel (channel 0
of layer `2`'s output x1000, the next layer's weights for it /1000: the float function is unchanged, the per-tensor
int8 range is ruined). Measured: accuracy of fp32, all-int8 and int8 with the fallback layers in float, in
ExecuTorch (.pte, XNNPACK) and LiteRT (TFLite: onnx2tf's full-integer file against TensorFlow's requantization with
the layers denylisted); file sizes; p50 latency (bench_worker, a fresh process per file, interleaved rounds, one
thread, batch 1). Writes build/experiments/outlier_fallback.json and prints one line per file.

    python -m pipeline.evidence.outlier_fallback build/experiments/outlier_fallback.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from pipeline.artifacts.artifact import Artifact, atomic_write_json


def task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images 1x16x16 of 4 noisy class prototypes, and their labels."""
    protos = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    return protos[y] + 0.8 * torch.randn(n, 1, 16, 16, generator=g), y


def outlier_model() -> nn.Module:
    """Trained, then given the outlier channel (ReLU is positively homogeneous: same float function)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for step in range(150):
        x, y = task(64, 100 + step)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        net[2].weight[0] *= 1000
        net[2].bias[0] *= 1000
        net[4].weight[:, 0] /= 1000
    return net


def _tflite_artifact(path: Path) -> Artifact:
    from pipeline.runtimes.tflite_file import io_quantization

    dtype, in_q, out_q = io_quantization(path)
    return Artifact(name=path.stem, path=str(path), format="tflite", precision="int8", layout="NHWC",
                    input_shape=(1, 16, 16, 1), input_dtype=dtype, input_quantization=in_q, output_quantization=out_q)


def _accuracy(art: Artifact, x: torch.Tensor, y: torch.Tensor) -> float:
    from pipeline.runtimes import open_session

    session = open_session(art)
    logits = np.concatenate([session.run(x[i : i + 1].numpy()) for i in range(len(x))])
    return float((logits.argmax(1) == y.numpy()).mean())


def _latency(arts: list[Artifact], work: Path, rounds: int = 3, runs: int = 300) -> dict[str, float]:
    """Median over rounds of each file's p50 (ms), files interleaved within each round."""
    from pipeline.core.proc import python_module, run

    np.save(work / "input.npy", task(1, 9)[0].numpy())
    p50s: dict[str, list[float]] = {a.name: [] for a in arts}
    for _ in range(rounds):
        for a in arts:
            args = {"artifact": a.to_dict(), "input": str(work / "input.npy"), "threads": 1, "warmup": 30,
                    "runs": runs}
            out = run(python_module("pipeline.measure.bench_worker", json.dumps(args)), what=f"benchmark {a.name}")
            p50s[a.name].append(json.loads(out.stdout.decode().strip().splitlines()[-1])["latency_ms"]["p50"])
    return {k: float(np.median(v)) for k, v in p50s.items()}


def measure(work: Path) -> dict:
    import onnx

    from pipeline.compression.quantization import ptq
    from pipeline.compression.sensitivity import fallback, rank
    from pipeline.converters import onnx2tf_adapter, tflite_fallback
    from pipeline.converters.executorch_lowering import lower
    from pipeline.converters.onnx_export import export
    from pipeline.layers.onnx_layers import node_module

    torch.set_num_threads(1)
    model = outlier_model()
    calib, _ = task(128, 1)
    x, y = task(1000, 2)
    with torch.no_grad():
        fp32 = float((model(x).argmax(1) == y).float().mean())
    ranking = rank(model, calib, calib[:64])
    all_int8 = ptq(model, calib)
    with torch.no_grad():
        limit = fp32 - 0.01
        kept_model, kept = fallback(model, calib, ranking,
                                    lambda m: float((m(x).argmax(1) == y).float().mean()) >= limit, 3)
    arts = []
    for name, converted in (("pte-int8", all_int8), ("pte-int8-fallback", kept_model)):
        path = work / f"{name}.pte"
        path.write_bytes(lower(converted, x[:1])[0])
        arts.append(Artifact(name=name, path=str(path), format="pte", precision="int8", layout="NCHW",
                             input_shape=(1, 1, 16, 16)))
    onnx_path = work / "outlier.onnx"
    export(model, x[:1], onnx_path, 18)
    nhwc = np.ascontiguousarray(calib.numpy().transpose(0, 2, 3, 1))
    files = onnx2tf_adapter.convert(onnx_path, work / "onnx2tf", nhwc, int8=True)
    nodes = [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv" and node_module(n) in kept]
    np.save(work / "calib.npy", nhwc)
    fallback_tflite = work / "tflite-int8-fallback.tflite"
    tflite_fallback.convert(work / "onnx2tf" / "tf", work / "calib.npy", onnx_path, nodes, fallback_tflite)
    all_tflite = work / "tflite-int8.tflite"
    all_tflite.write_bytes(Path(files["int8"]).read_bytes())
    arts += [_tflite_artifact(all_tflite), _tflite_artifact(fallback_tflite)]
    p50 = _latency(arts, work)
    rows = [{"file": a.name, "runtime": "executorch" if a.format == "pte" else "litert", "accuracy":
             _accuracy(a, x, y), "size_bytes": Path(a.path).stat().st_size, "p50_ms": p50[a.name]} for a in arts]
    return {"fp32_accuracy": fp32, "test_images": int(len(x)), "float_layers": kept,
            "ranking": ranking["layers"], "files": rows,
            "latency": "bench_worker, 1 thread, batch 1, 30 warm-up + 300 timed invokes, median p50 of 3 interleaved "
                       "rounds, on the host CPU"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp))
    atomic_write_json(out, result)
    print(f"fp32 accuracy {result['fp32_accuracy']:.3f} on {result['test_images']} images; kept in float: "
          f"{', '.join(result['float_layers'])}; ranking: "
          + ", ".join(f"{r['layer']} {r['sqnr_db']:.1f} dB" for r in result["ranking"]))
    for r in result["files"]:
        print(f"{r['file']:22} {r['runtime']:10} accuracy {r['accuracy']:.3f}  {r['size_bytes']:7d} bytes  "
              f"p50 {r['p50_ms']:.4f} ms")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

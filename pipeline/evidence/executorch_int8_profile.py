"""Where the int8 .pte of EfficientNet-Lite0 loses its time, and what the pad fix wins (`make evidence-et-int8`).

Builds the fp32 and int8 (PT2E PTQ, the recipe's calibration pictures) ExecuTorch programs of the pretrained
EfficientNet-Lite0 at 224x224 with the pipeline's own functions, and candidates beside them:
- int8-before: the quantizer and partitioner as they were (XNNPACKQuantizer alone, stock XnnpackPartitioner);
- int8: the pipeline now (zero pads share their input's int8 parameters, the partitioner takes int8 pads);
- int8-static-batch: the same from a graph exported with a static batch of 1 instead of the dynamic batch Dim;
- int8-per-tensor: the same with per-tensor instead of per-channel weights;
- int8-per-op-mode: the same, lowered with XnnpackPartitioner(per_op_mode=True) (one delegate call per operator);
- int8-5x5-depthwise-float: the same with the nine 5x5 depthwise layers kept in float (the pipeline's fallback),
  as their int8 kernel is slower than the fp32 one here.
Each program is profiled per operator (ETDump + Inspector, `pipeline.measure.executorch_ops`) and timed in this
process, one thread, in alternating rounds (every program once per round, 30 invokes each, p50; the figure is the
median over rounds). Numerics: each int8 program against its own PT2E reference on the photos. With --tflite,
onnx2tf's int8 TFLite file is converted too (minutes), timed in the same rounds (LiteRT, XNNPACK, one thread) and
given LiteRT's op table (no per-op times there). Last, single depthwise layers of EfficientNet-Lite0's shapes,
fp32 and int8, in ExecuTorch (the kernel's ETDump time) and LiteRT (TensorFlow's converter, one-op model, whole
invoke): the kernel that int8 cannot speed up here. Writes the JSON and prints markdown tables.

    python -m pipeline.evidence.executorch_int8_profile build/experiments/executorch_int8_profile.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pipeline.artifacts.artifact import atomic_write_json

# EfficientNet-Lite0's depthwise layers at 224x224: (input size, channels, kernel, stride)
DEPTHWISE = ((112, 96, 3, 2), (56, 144, 3, 1), (56, 144, 5, 2), (28, 240, 5, 1), (14, 480, 5, 1), (14, 672, 5, 2))


def _photos() -> torch.Tensor:
    from pipeline import data
    from pipeline.engine.recipes import load_recipe

    recipe = load_recipe("efficientnet-lite0")
    return torch.from_numpy(data.to_tensor(data.calibration_images(recipe), data.input_spec(recipe)))


def _before(model: torch.nn.Module, calib: torch.Tensor) -> tuple[torch.fx.GraphModule, bytes]:
    """The int8 program as the pipeline made it before the pad fix: XNNPACK's quantizer alone, stock partitioner."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from executorch.exir import to_edge_transform_and_lower

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    reference = _convert(model, calib, quantizer)
    exported = torch.export.export(reference, (calib[:1],))
    return reference, to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def _per_tensor(model: torch.nn.Module, calib: torch.Tensor) -> torch.fx.GraphModule:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer

    from pipeline.compression.pad_sharing import ZeroPadSharing

    xnnpack = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=False))
    return _convert(model, calib, ComposableQuantizer([xnnpack, ZeroPadSharing()]))


def _convert(model: torch.nn.Module, calib: torch.Tensor, quantizer) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from pipeline.compression.quantization import export_for_quantization

    prepared = prepare_pt2e(export_for_quantization(copy.deepcopy(model), calib[:2]), quantizer)
    with torch.no_grad():
        prepared(calib)
    converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    return converted


def build(work: Path, model: torch.nn.Module, calib: torch.Tensor) -> tuple[dict[str, Path], dict, dict]:
    """({program: .pte path}, {int8 program: its PT2E reference}, {program: seconds to build})."""
    from pipeline.compression.quantization import ptq
    from pipeline.converters.executorch_lowering import lower

    example = calib[:1]
    makers: dict[str, Callable[[], tuple[torch.nn.Module | None, bytes]]] = {
        "fp32": lambda: (None, lower(model, example)[0]),
        "int8-before": lambda: _before(model, calib),
        "int8": lambda: _lowered(ptq(model, calib), example),
        # the same PTQ on a graph exported for batch 1 alone (no dynamic Dim); calibrated one image at a time
        "int8-static-batch": lambda: _lowered(ptq(model, calib, batch=1, graph=torch.export.export(
            copy.deepcopy(model), (example,)).module()), example),
        "int8-per-tensor": lambda: _lowered(_per_tensor(model, calib), example),
        "int8-per-op-mode": lambda: _per_op_mode(ptq(model, calib), example),
        "int8-5x5-depthwise-float": lambda: _lowered(ptq(model, calib, float_modules=_depthwise_5x5(model)), example),
    }
    paths, references, seconds = {}, {}, {}
    for name, make in makers.items():
        start = time.perf_counter()
        reference, buffer = make()
        seconds[name] = round(time.perf_counter() - start, 1)
        paths[name] = work / f"{name}.pte"
        paths[name].write_bytes(buffer)
        if reference is not None:
            references[name] = reference
        print(f"built {name} in {seconds[name]} s", flush=True)
    return paths, references, seconds


def _depthwise_5x5(model: torch.nn.Module) -> tuple[str, ...]:
    return tuple(name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)
                 and m.groups == m.in_channels > 1 and m.kernel_size == (5, 5))


def _lowered(reference: torch.fx.GraphModule, example: torch.Tensor) -> tuple[torch.fx.GraphModule, bytes]:
    from pipeline.converters.executorch_lowering import lower

    return reference, lower(reference, example)[0]


def _per_op_mode(reference: torch.fx.GraphModule, example: torch.Tensor) -> tuple[torch.fx.GraphModule, bytes]:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from pipeline.converters.executorch_lowering import quantized_pad_configs

    partitioner = XnnpackPartitioner(configs=quantized_pad_configs(), per_op_mode=True)
    exported = torch.export.export(reference, (example,))
    return reference, to_edge_transform_and_lower(exported, partitioner=[partitioner]).to_executorch().buffer


def _litert_ms(model_bytes: bytes, rounds: int = 5, runs: int = 50) -> float:
    """Median over rounds of the p50 invoke time (ms) of a one-op LiteRT model, one thread, zero input."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
    p50s = []
    for _ in range(rounds):
        times = []
        for _ in range(runs):
            start = time.perf_counter_ns()
            interpreter.invoke()
            times.append((time.perf_counter_ns() - start) / 1e6)
        p50s.append(float(np.median(times)))
    return float(np.median(p50s))


def depthwise_table(work: Path) -> list[dict]:
    """One depthwise conv + ReLU6 per EfficientNet-Lite0 shape: ExecuTorch's kernel time (ETDump) fp32 and int8
    against LiteRT's one-op invoke fp32 and int8 (both runtimes use XNNPACK, each its own build)."""
    from pipeline.evidence.single_layer import ConvLayer, calibration, executorch_programs, litert_models
    from pipeline.measure.executorch_ops import profile_program

    rows = []
    for size, channels, kernel, stride in DEPTHWISE:
        layer = ConvLayer(size, channels, None, kernel, stride)
        x = calibration(layer)[:1]
        row: dict = {"shape": f"{size}x{size}x{channels} k{kernel} s{stride}"}
        for precision, program in executorch_programs(layer).items():
            path = work / f"depthwise-{precision}.pte"
            path.write_bytes(program)
            kernels = profile_program(path, x, runs=100, threads=1)["kernels"]
            conv = next(k for k in kernels if k["kernel"].startswith("Convolution"))
            row[f"executorch_{precision}_ms"], row[f"executorch_{precision}_kernel"] = conv["p50_ms"], conv["kernel"]
        litert = litert_models(layer)
        row["litert_fp32_ms"], row["litert_int8_ms"] = _litert_ms(litert["fp32"]), _litert_ms(litert["int8"])
        rows.append(row)
        print(f"depthwise {row['shape']}: done", flush=True)
    return rows


def _invokers(paths: dict[str, Path], x: torch.Tensor, tflite: Path | None) -> dict[str, Callable[[], object]]:
    from executorch.runtime import Runtime

    out: dict[str, Callable[[], object]] = {}
    for name, path in paths.items():
        method = Runtime.get().load_program(path).load_method("forward")
        out[name] = lambda m=method: m.execute([x])
    if tflite is not None:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(tflite), num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        nhwc = np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1))
        if detail["dtype"] == np.int8:  # onnx2tf's full-integer file: int8 in, quantized as an app would once
            from pipeline.artifacts.preprocess import quantize_int8

            scale, zero_point = detail["quantization"]
            nhwc = np.ascontiguousarray(quantize_int8(nhwc, scale, zero_point))
        interpreter.set_tensor(detail["index"], nhwc)
        out["tflite-int8 (onnx2tf)"] = interpreter.invoke
    return out


def time_rounds(invokers: dict[str, Callable[[], object]], rounds: int, runs: int = 30) -> dict[str, dict]:
    """Every program `runs` invokes per round, programs alternating within each round; p50 per round (ms)."""
    for invoke in invokers.values():
        for _ in range(5):  # weight packing and caches belong to loading
            invoke()
    p50s: dict[str, list[float]] = {name: [] for name in invokers}
    for _ in range(rounds):
        for name, invoke in invokers.items():
            times = []
            for _ in range(runs):
                start = time.perf_counter_ns()
                invoke()
                times.append((time.perf_counter_ns() - start) / 1e6)
            p50s[name].append(float(np.median(times)))
    return {name: {"rounds_p50_ms": v, "median_p50_ms": float(np.median(v))} for name, v in p50s.items()}


def numerics(paths: dict[str, Path], references: dict, model: torch.nn.Module, photos: torch.Tensor) -> dict:
    """Per int8 program: max abs difference and top-1 agreement with its PT2E reference, and the reference's
    top-1 agreement with fp32, on the photos."""
    from executorch.runtime import Runtime

    with torch.no_grad():
        fp32 = model(photos).argmax(1)
        out = {}
        for name, reference in references.items():
            method = Runtime.get().load_program(paths[name]).load_method("forward")
            one_by_one = [photos[i : i + 1] for i in range(len(photos))]  # the static-batch graph takes batch 1 only
            ref = torch.cat([reference(x) for x in one_by_one])
            got = torch.cat([method.execute([x])[0] for x in one_by_one])
            out[name] = {"max_abs_diff_vs_reference": float((got - ref).abs().max()),
                         "logit_max": float(ref.abs().max()),
                         "top1_agreement_vs_reference": float((got.argmax(1) == ref.argmax(1)).float().mean()),
                         "reference_top1_agreement_vs_fp32": float((ref.argmax(1) == fp32).float().mean())}
    return out


def _tflite(work: Path, model: torch.nn.Module, photos: torch.Tensor) -> Path:
    from pipeline.converters import onnx2tf_adapter
    from pipeline.converters.onnx_export import export

    onnx_path = work / "efficientnet_lite0.onnx"
    export(model, photos[:1], onnx_path, 20)
    nhwc = np.ascontiguousarray(photos.numpy().transpose(0, 2, 3, 1))
    return Path(onnx2tf_adapter.convert(onnx_path, work / "onnx2tf", nhwc, int8=True)["int8"])


def measure(work: Path, rounds: int, profile_runs: int, with_tflite: bool) -> dict:
    from pipeline.compression.macs import count_macs
    from pipeline.measure.executorch_ops import profile_program
    from pipeline.models.efficientnet_lite import efficientnet_lite0
    from pipeline.runtimes.executorch_session import set_threads

    torch.set_num_threads(1)
    set_threads(1)
    photos = _photos()
    model = efficientnet_lite0().eval()
    paths, references, seconds = build(work, model, photos)
    tflite = _tflite(work, model, photos) if with_tflite else None
    x = photos[:1]
    profiles = {name: profile_program(path, x, runs=profile_runs, threads=1) for name, path in paths.items()}
    timing = time_rounds(_invokers(paths, x, tflite), rounds)
    base = timing["fp32"]
    for t in timing.values():
        t["speedup_vs_fp32"] = base["median_p50_ms"] / t["median_p50_ms"]
        t["per_round_speedup_vs_fp32"] = [f / v for f, v in zip(base["rounds_p50_ms"], t["rounds_p50_ms"], strict=True)]
    result = {"model": "EfficientNet-Lite0, ImageNet weights, 1x3x224x224",
              "macs": count_macs(model, x)["macs"], "build_seconds": seconds, "profiles": profiles,
              "timing": timing, "numerics": numerics(paths, references, model, photos),
              "how": f"one thread (torch and XNNPACK); {rounds} alternating rounds of 30 invokes per program, p50 "
                     f"per round, median of rounds; profiles: ETDump, {profile_runs} runs after 2 warm-up runs"}
    if tflite is not None:
        from pipeline.measure.litert_ops import op_table

        result["tflite_int8_ops"] = op_table(tflite)
    result["depthwise"] = depthwise_table(work)
    return result


def markdown(r: dict) -> str:
    """The tables the README and the issue quote: time per category and kernel, fp32 against int8 before/after."""
    shown = [n for n in ("fp32", "int8-before", "int8") if n in r["profiles"]]
    lines = [f"{r['model']}, {r['macs'] / 1e6:.0f} M MACs; {r['how']}.", "",
             "| program | p50 ms | speed-up vs fp32 | per-round speed-ups |", "|---|---|---|---|"]
    for name, t in r["timing"].items():
        rounds = ", ".join(f"{v:.2f}" for v in t["per_round_speedup_vs_fp32"])
        lines.append(f"| {name} | {t['median_p50_ms']:.2f} | {t['speedup_vs_fp32']:.2f}x | {rounds} |")
    lines += ["", "| category | " + " | ".join(f"{n} ms (share)" for n in shown) + " |",
              "|---|" + "---|" * len(shown)]
    cats = {c["category"]: None for n in shown for c in r["profiles"][n]["categories"]}
    for cat in cats:
        cells = []
        for n in shown:
            g = next((c for c in r["profiles"][n]["categories"] if c["category"] == cat), None)
            cells.append(f"{g['p50_ms']:.3f} ({g['share']:.0%}) x{g['count']}" if g else "-")
        lines.append(f"| {cat} | " + " | ".join(cells) + " |")
    for n in shown:
        p = r["profiles"][n]
        lines += ["", f"{n}: execute p50 {p['execute_p50_ms']:.2f} ms (ETDump run)", "",
                  "| kernel | events | p50 ms | share |", "|---|---|---|---|"]
        lines += [f"| {k['kernel']} | {k['count']} | {k['p50_ms']:.3f} | {k['share']:.1%} |" for k in p["kernels"]]
    lines += ["", "| int8 program | max abs diff vs its PT2E reference | top-1 vs reference | "
              "reference top-1 vs fp32 |", "|---|---|---|---|"]
    lines += [f"| {n} | {v['max_abs_diff_vs_reference']:.3f} (logits to {v['logit_max']:.1f}) | "
              f"{v['top1_agreement_vs_reference']:.2f} | {v['reference_top1_agreement_vs_fp32']:.2f} |"
              for n, v in r["numerics"].items()]
    lines += ["", "| depthwise layer | ExecuTorch fp32 ms | ExecuTorch int8 ms | LiteRT fp32 ms | LiteRT int8 ms |",
              "|---|---|---|---|---|"]
    lines += [f"| {d['shape']} | {d['executorch_fp32_ms']:.3f} | {d['executorch_int8_ms']:.3f} | "
              f"{d['litert_fp32_ms']:.3f} | {d['litert_int8_ms']:.3f} |" for d in r["depthwise"]]
    if "tflite_int8_ops" in r:
        t = r["tflite_int8_ops"]
        lines += ["", f"onnx2tf int8 TFLite: {t['op_count']} ops, {t['integer_ops']} integer ({t['timing']})", "",
                  "| op | count | input | outputs |", "|---|---|---|---|"]
        lines += [f"| {o['op']} | {o['count']} | {o['input_dtype']} | {', '.join(o['output_dtypes'])} |"
                  for o in t["ops"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rounds", type=int, default=6, help="alternating timing rounds (default 6)")
    parser.add_argument("--profile-runs", type=int, default=20, help="ETDump runs per program (default 20)")
    parser.add_argument("--tflite", action="store_true", help="also onnx2tf's int8 TFLite (adds minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp), args.rounds, args.profile_runs, args.tflite)
    atomic_write_json(args.out, result)
    print(markdown(result))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Why the PT2E int8 EfficientNet-Lite0 agrees less with fp32 than onnx2tf's int8 file, one candidate at a time.

Each candidate is a PT2E PTQ of the pretrained EfficientNet-Lite0 (the PyTorch int8 reference the .pte reproduces),
calibrated either on the 14 evaluation photos (as the recipe did) or on the calibration photographs kept apart from
them (pipeline/data/calibration_photos.py). Scores against fp32: top-1 agreement on the 14 evaluation photos, on 112
views of them (crops and mirror images: more labels, not independent ones), and the logits' SQNR on those views.
With --layers, the SQNR of every module's output against fp32 for the pipeline before and after, on the 14 photos:
where the int8 model loses. Writes JSON and prints a markdown table.

    python -m pipeline.evidence.int8_fidelity build/experiments/int8_fidelity.json [--layers]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pipeline.artifacts.artifact import atomic_write_json
from pipeline.layers.metrics import compare

SIZE = 224
BEFORE, FUSED = "before: XNNPACK default (histogram, per-channel)", "conv+ReLU6 fused"


def _spec():
    from pipeline.artifacts.preprocess import InputSpec

    return InputSpec(SIZE, SIZE, 3, (127 / 255,) * 3, (128 / 255,) * 3)


def evaluation_views() -> tuple[torch.Tensor, torch.Tensor]:
    """(the 14 evaluation photos, 112 views of them), normalised NCHW."""
    import skimage.data

    from pipeline.artifacts.preprocess import normalise_batch, resize_bilinear, to_channels
    from pipeline.data import calibration_photos, photos

    spec = _spec()
    images, _ = photos.load(spec.to_dict())
    views = []
    for view in calibration_photos.VIEWS:
        for name in photos.NAMES:
            crop = calibration_photos._view(to_channels(getattr(skimage.data, name)(), 3), *view)
            views.append(np.clip(np.rint(resize_bilinear(crop, SIZE, SIZE)), 0, 255).astype(np.uint8))
    return (torch.from_numpy(normalise_batch(images, spec)),
            torch.from_numpy(normalise_batch(np.stack(views), spec)))


def calibration_sets(photos14: torch.Tensor) -> dict[str, torch.Tensor]:
    from pipeline.artifacts.preprocess import normalise_batch
    from pipeline.data import calibration_photos

    apart = calibration_photos.load(SIZE, SIZE, 3, 112)
    if apart is None:
        raise SystemExit(f"the calibration photographs are not installed (make setup: {calibration_photos.PACKAGE})")
    return {"eval-photos-14": photos14, "apart-112": torch.from_numpy(normalise_batch(apart, _spec()))}


def _config(observer=None, per_channel: bool = True):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    config = get_symmetric_quantization_config(is_per_channel=per_channel)
    if observer is None:
        return config
    act = dataclasses.replace(config.input_activation,
                              observer_or_fake_quant_ctr=observer.with_args(eps=2 ** -12))
    return dataclasses.replace(config, input_activation=act, output_activation=act)


def _quantizer(config, fuse_clamp: bool):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer

    from pipeline.compression.conv_clamp import ConvClampFusion
    from pipeline.compression.pad_sharing import ZeroPadSharing

    parts = [ConvClampFusion(config)] if fuse_clamp else []
    return ComposableQuantizer([*parts, XNNPACKQuantizer().set_global(config), ZeroPadSharing()])


def candidates() -> dict[str, Callable]:
    """name -> (graph, calibration, model) -> converted int8 reference."""
    from torchao.quantization.pt2e import (
        HistogramObserver,  # noqa: F401  (the default, named for the reader)
        MinMaxObserver,
        MovingAverageMinMaxObserver,
    )

    from pipeline.compression.quantization import ptq

    def convert(config, fuse: bool):
        return lambda graph, calib, model: _ptq(graph, calib, _quantizer(config, fuse))

    def ends_float(fuse: bool):
        def run(graph, calib, model):
            from pipeline.compression.quantization import weighted_layers

            layers = weighted_layers(model)
            return ptq(model, calib, float_modules=(layers[0], layers[-1]), graph=graph, fuse_clamp=fuse)
        return run

    return {
        BEFORE: convert(_config(), False),
        "per-tensor weights": convert(_config(per_channel=False), False),
        "min/max observer": convert(_config(MinMaxObserver), False),
        "moving-average min/max observer": convert(_config(MovingAverageMinMaxObserver), False),
        "first and last layers float": ends_float(False),
        FUSED: convert(_config(), True),
        "conv+ReLU6 fused, min/max observer": convert(_config(MinMaxObserver), True),
        "conv+ReLU6 fused, first and last layers float": ends_float(True),
    }


def _ptq(graph: torch.fx.GraphModule, calib: torch.Tensor, quantizer, batch: int = 16) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(copy.deepcopy(graph), quantizer)
    with torch.no_grad():
        for i in range(0, len(calib), batch):
            prepared(calib[i:i + batch])
    converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    return converted


def _logits(model, x: torch.Tensor, batch: int = 16) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def score(converted, fp32: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]) -> dict:
    out = {}
    for name, x in inputs.items():
        got = _logits(converted, x)
        out[f"top1_{name}"] = int((got.argmax(1) == fp32[name].argmax(1)).sum())
        out[f"n_{name}"] = len(x)
        out[f"sqnr_db_{name}"] = compare(got.numpy(), fp32[name].numpy())["sqnr_db"]
    return out


def layer_sqnr(model: torch.nn.Module, converted: torch.fx.GraphModule, x: torch.Tensor) -> dict[str, float]:
    """module name -> SQNR (dB) of its int8 output against fp32 on `x`, in the order the modules ran."""
    import torchao.quantization.pt2e  # noqa: F401  registers the quantized_decomposed ops

    from pipeline.layers.pt2_layers import record_modules
    from pipeline.layers.torch_layers import capture

    flow = capture(model, x)
    values, _ = record_modules(converted, x)
    out = {}
    for name, ref in flow.outputs.items():
        key = flow.canonical(name, set(values))
        if key in values and values[key].shape == ref.shape:
            out[name] = compare(values[key], ref)["sqnr_db"]
    return out


def measure(with_layers: bool) -> dict:
    from pipeline.compression.quantization import export_for_quantization
    from pipeline.models.efficientnet_lite import efficientnet_lite0

    torch.manual_seed(0)
    model = efficientnet_lite0().eval()
    photos14, views = evaluation_views()
    inputs = {"photos14": photos14, "views112": views}
    fp32 = {k: _logits(model, x) for k, x in inputs.items()}
    graph = export_for_quantization(copy.deepcopy(model), photos14[:2])
    rows, layers = [], {}
    every = candidates()
    for calib_name, calib in calibration_sets(photos14).items():
        # on the evaluation photos (as the recipe calibrated before) only the pipeline before and the fix
        names = list(every) if calib_name == "apart-112" else [BEFORE, FUSED]
        for name in names:
            make = every[name]
            start = time.perf_counter()
            converted = make(graph, calib, model)
            row = {"candidate": name, "calibration": calib_name, **score(converted, fp32, inputs),
                   "seconds": time.perf_counter() - start}
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
            if with_layers and calib_name == "apart-112" and name in (BEFORE, FUSED):
                layers[name] = layer_sqnr(model, converted, photos14)
    return {"model": "EfficientNet-Lite0, ImageNet weights, 224x224", "rows": rows, "layer_sqnr_db": layers,
            "how": "PT2E PTQ references (the .pte reproduces them) against fp32 PyTorch; views112 are 8 crops and "
                   "mirror images of each of the 14 evaluation photos"}


def markdown(r: dict) -> str:
    lines = ["| candidate | calibration | agree 14 photos | agree 112 views | logit SQNR dB (views) |",
             "|---|---|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['candidate']} | {row['calibration']} | {row['top1_photos14']}/14 | "
                     f"{row['top1_views112']}/112 | {row['sqnr_db_views112']:.1f} |")
    if r["layer_sqnr_db"]:
        names = list(r["layer_sqnr_db"])
        lines += ["", f"| module | {' | '.join(names)} |", "|---|" + "---:|" * len(names)]
        first = r["layer_sqnr_db"][names[0]]
        for module in first:
            lines.append(f"| {module} | " + " | ".join(f"{r['layer_sqnr_db'][n].get(module, float('nan')):.1f}"
                                                      for n in names) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", action="store_true", help="also every module's SQNR against fp32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = measure(args.layers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""int8 sensitivity and float fallback: which layers int8 hurts most, and keeping just those in float.

Sensitivity is measured "one layer alone": for each convolution and linear layer, only that layer is quantized
(PT2E PTQ: its weights, its input and its output), and the model's output SQNR against the float model is measured on
a fixed slice of the calibration images (no test data, so the choice of float layers never sees the evaluation
set). The lower that SQNR, the more int8 costs at that layer. "All but one" was tried first and misses the common
case: an outlier tensor between two layers is quantized as the output of one and the input of the next, so keeping
either one alone in float wins nothing back, while quantizing either one alone shows the damage.

For example::

    ranking = rank(model, calib, probe)             # {"layers": [{"layer": "features.3.conv", "sqnr_db": 4.1}, ...]}
    converted, kept = fallback(model, calib, ranking, passes, max_layers=3)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from pipeline.artifacts.model_io import flat_outputs
from pipeline.compression.quantization import count, export_for_quantization, ptq, weighted_layers
from pipeline.compression.quantization import rows as samples


def sqnr_db(got: torch.Tensor, ref: torch.Tensor) -> float:
    noise = float(((got.double() - ref.double()) ** 2).sum())
    signal = float((ref.double() ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def _output(module: torch.nn.Module, x: torch.Tensor | list[torch.Tensor], batch: int = 64) -> torch.Tensor:
    """Every output of `module` on `x`, flattened and joined (the SQNR is over all of them)."""
    with torch.no_grad():
        parts = [torch.cat([o.reshape(len(o), -1) for o in flat_outputs(module(*samples(x, i, i + batch)))[1]], 1)
                 for i in range(0, count(x), batch)]
    return torch.cat(parts)


def rank(model: nn.Module, calibration: torch.Tensor, probe: torch.Tensor,
         progress: Callable[[str], None] | None = None) -> dict:
    """Rank the weighted layers by the output SQNR of quantizing each one alone (most damaging first)."""
    model = model.eval()
    graph = export_for_quantization(model, samples(calibration, 0, 2))
    ref = _output(model, probe)
    base = sqnr_db(_output(ptq(model, calibration, graph=graph), probe), ref)
    rows = []
    for name in weighted_layers(model):
        s = sqnr_db(_output(ptq(model, calibration, only_modules=(name,), graph=graph), probe), ref)
        rows.append({"layer": name, "sqnr_db": s})
        if progress:
            progress(name)
    rows.sort(key=lambda r: r["sqnr_db"])
    return {"method": "one layer int8 at a time (PT2E PTQ), the rest float; the model's output SQNR against the "
                      "float model", "probe_images": count(probe), "all_int8_sqnr_db": base, "layers": rows}


def fallback(model: nn.Module, calibration: torch.Tensor, ranking: dict,
             passes: Callable[[torch.fx.GraphModule], bool], max_layers: int) -> tuple[torch.fx.GraphModule, list]:
    """Keep the 1, 2, ... most sensitive layers in float until `passes(converted)`; at most `max_layers`.

    Returns the last converted model tried and the layers it keeps in float (the caller re-checks the gate to say
    whether it passed).
    """
    graph = export_for_quantization(model.eval(), samples(calibration, 0, 2))
    order = [r["layer"] for r in ranking["layers"]]
    converted, kept = None, []
    for k in range(1, min(max_layers, len(order)) + 1):
        kept = order[:k]
        converted = ptq(model, calibration, float_modules=tuple(kept), graph=graph)
        if passes(converted):
            break
    return converted, kept

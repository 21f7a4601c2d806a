"""The pipeline's stages in run order. A new stage is one new module with a STAGE and one line here."""

from __future__ import annotations

from pipeline.stages import (
    benchmark,
    decompose,
    evaluate,
    on_device,
    prune,
    quantize,
    report,
    to_executorch,
    to_onnx,
    to_tflite,
    train,
)
from pipeline.stages.contract import Stage

STAGES: tuple[Stage, ...] = (
    train.STAGE,
    decompose.STAGE,
    prune.STAGE,
    quantize.STAGE,
    to_executorch.STAGE,  # in the background (see Stage.background): beside to_onnx and to_tflite
    to_onnx.STAGE,
    to_tflite.STAGE,
    evaluate.STAGE,
    benchmark.STAGE,
    on_device.STAGE,
    report.STAGE,
)


def stage_names() -> list[str]:
    return [s.name for s in STAGES]

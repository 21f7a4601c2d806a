"""to_tflite: fp32 and fp16 TFLite models from the ONNX artifact through onnx2tf (offline, input NHWC)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pipeline import data
from pipeline.artifact import Artifact, finalize
from pipeline.config import Config
from pipeline.converters import onnx2tf_adapter
from pipeline.errors import ToolError
from pipeline.stage import Context, Stage, StageOutput


def wanted(target: Config) -> list[str]:
    return [k.split("-")[1] for k in target.data["artifacts"]["build"] if k.startswith("tflite-")]


def settings(recipe: Config, target: Config) -> dict:
    return {"precisions": wanted(target)}


def calibration_nhwc(recipe: Config) -> np.ndarray:
    """Normalised calibration images in the NHWC layout onnx2tf's TensorFlow graph takes."""
    x = data.to_tensor(data.calibration_images(recipe), data.input_spec(recipe))
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def run(ctx: Context) -> StageOutput:
    precisions = wanted(ctx.target)
    if not precisions:
        return StageOutput((), {"skipped": "the target builds no TFLite artifact"})
    src = ctx.inputs["to_onnx"].artifact("onnx-fp32")
    work = ctx.out_dir / "onnx2tf"
    files = onnx2tf_adapter.convert(Path(src.path), work,
                                    calibration_nhwc(ctx.recipe), int8=False)
    n, c, h, w = src.input_shape
    arts = []
    for precision in precisions:
        if precision not in files:
            raise ToolError(f"to_tflite: onnx2tf wrote no {precision} model (looked for *"
                            f"{onnx2tf_adapter.VARIANTS[precision]} in {work / 'tf'})")
        dest = ctx.out_dir / f"model_{precision}.tflite"
        shutil.move(files[precision], dest)
        arts.append(finalize(Artifact(
            name=f"tflite-{precision}", path=str(dest), format="tflite", precision=precision, layout="NHWC",
            input_shape=(n, h, w, c), extra={"converter": "onnx2tf", "source": src.name,
                                             "weights": "float16" if precision == "fp16" else "float32"},
        ), ("onnx2tf", "tensorflow-cpu", "onnx")))
    shutil.rmtree(work, ignore_errors=True)  # SavedModel and the other variants: not artifacts of this run
    return StageOutput(tuple(arts), {"precisions": precisions})


STAGE = Stage("to_tflite", "TFLite fp32/fp16 via onnx2tf (NHWC input)", ("to_onnx",), settings, run,
              tools=("onnx2tf", "tensorflow-cpu", "tf-keras", "onnx", "onnxsim", "onnx-graphsurgeon"))

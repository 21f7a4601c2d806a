"""to_onnx: one self-contained ONNX file from the dynamo exporter, checked by the ONNX checker and ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import torch

from pipeline import data
from pipeline.artifact import Artifact, finalize
from pipeline.config import Config
from pipeline.errors import ToolError
from pipeline.models.checkpoint import load_model
from pipeline.runtimes import open_session
from pipeline.stage import Context, Stage, StageOutput

PARITY_SAMPLES = 16


def settings(recipe: Config, target: Config) -> dict:
    return {"opset": recipe.data["export"]["opset"]}


def export(model: torch.nn.Module, example: torch.Tensor, path, opset: int) -> None:
    """Dynamo export to a single file (weights inside, no .onnx.data beside it)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=["input"], output_names=["logits"])
    program.save(str(path), external_data=False)


def run(ctx: Context) -> StageOutput:
    src = ctx.inputs["train"].artifact("torch-fp32")
    model = load_model(src)
    example = torch.zeros(src.input_shape)
    path = ctx.out_dir / "model.onnx"
    try:
        export(model, example, path, ctx.recipe.data["export"]["opset"])
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ToolError(f"to_onnx: export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    art = finalize(Artifact(name="onnx-fp32", path=str(path), format="onnx", precision="fp32", layout="NCHW",
                            input_shape=src.input_shape, extra={"opset": ctx.recipe.data["export"]["opset"],
                                                                "exporter": "torch.onnx dynamo"}),
                   ("torch", "onnx", "onnxscript"))
    # Parity on real inputs right at the door: a broken export should fail here, not three stages later.
    spec = data.input_spec(ctx.recipe)
    x = data.to_tensor(data.eval_split(ctx.recipe, PARITY_SAMPLES).images, spec)
    session = open_session(art, threads=ctx.threads)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = np.concatenate([session.run(x[i : i + 1]) for i in range(len(x))])
    diff = float(np.abs(got - ref).max())
    ctx.log.info("ONNX Runtime vs PyTorch on %d inputs: max abs diff %.3g", len(x), diff)
    if diff > ctx.recipe.data["tolerances"]["fp32"]["max_abs_diff"]:
        raise ToolError(f"to_onnx: ONNX Runtime output differs from PyTorch by {diff:.3g} "
                        f"(tolerances.fp32.max_abs_diff = {ctx.recipe.data['tolerances']['fp32']['max_abs_diff']:g})")
    return StageOutput((art,), {"ort_max_abs_diff": diff, "parity_samples": len(x)})


STAGE = Stage("to_onnx", "ONNX fp32 (dynamo exporter), checked against ONNX Runtime", ("train",), settings, run,
              tools=("torch", "onnx", "onnxscript", "onnxruntime"))

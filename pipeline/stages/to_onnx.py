"""to_onnx: one self-contained ONNX file from the dynamo exporter, checked by the ONNX checker and ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import torch

from pipeline import data
from pipeline.artifact import Artifact, artifact_name, derived, finalize
from pipeline.compression.macs import count_onnx_macs
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


def convert(ctx: Context, src: Artifact) -> tuple[Artifact, float]:
    """Export one torch artifact and check it against ONNX Runtime on real inputs; returns (artifact, max diff)."""
    model = load_model(src)
    name = artifact_name("onnx", src.precision, src.pruned, src.quantization,
                         suffix="float" if src.role == "intermediate" else "")
    path = ctx.out_dir / f"{name}.onnx"
    opset = ctx.recipe.data["export"]["opset"]
    try:
        export(model, torch.zeros(src.input_shape), path, opset)
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ToolError(f"to_onnx: {name}: export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") \
            from None
    art = finalize(derived(src, name=name, path=str(path), format="onnx", precision=src.precision, layout="NCHW",
                           reference=src.name, extra={**src.extra, "opset": opset, "exporter": "torch.onnx dynamo"}),
                   ("torch", "onnx", "onnxscript"))
    # Parity on real inputs right at the door: a broken export should fail here, not three stages later.
    x = data.to_tensor(data.eval_split(ctx.recipe, PARITY_SAMPLES).images, data.input_spec(ctx.recipe))
    session = open_session(art, threads=ctx.threads)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = np.concatenate([session.run(x[i : i + 1]) for i in range(len(x))])
    diff = float(np.abs(got - ref).max())
    ctx.log.info("%s: ONNX Runtime vs PyTorch on %d inputs: max abs diff %.3g", name, len(x), diff)
    limit = ctx.recipe.data["tolerances"]["fp32"]["max_abs_diff"]
    if diff > limit:
        raise ToolError(f"to_onnx: {name}: ONNX Runtime output differs from PyTorch by {diff:.3g} "
                        f"(tolerances.fp32.max_abs_diff = {limit:g})")
    return art, diff


def run(ctx: Context) -> StageOutput:
    arts, diffs, macs = [], {}, {}
    for src in ctx.upstream_artifacts():
        if src.format == "torch":
            art, diffs[art.name] = convert(ctx, src)
            arts.append(art)
            # an independent count from the graph's shapes: a layer the PyTorch hooks missed shows up here
            macs[art.name] = count_onnx_macs(art.path)
            ctx.log.info("%s: %d MACs from the ONNX graph, %d from the PyTorch layers", art.name, macs[art.name],
                         art.macs)
    return StageOutput(tuple(arts), {"ort_max_abs_diff": diffs, "parity_samples": PARITY_SAMPLES,
                                     "macs_onnx": macs})


STAGE = Stage("to_onnx", "ONNX fp32 of every float model (dynamo exporter), checked against ONNX Runtime",
              ("train", "prune", "quantize"), settings, run,
              tools=("torch", "onnx", "onnxscript", "onnxruntime"))

"""to_onnx: one self-contained ONNX file from the dynamo exporter, checked by the ONNX checker and ONNX Runtime.

For a recipe whose model is an ONNX file (model.source = "onnx"), nothing is exported: the user's file is imported
(made self-contained, checked, loaded in ONNX Runtime) and becomes the fp32 artifact the later stages start from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from pipeline import data
from pipeline.artifacts.artifact import Artifact, artifact_name, derived, finalize
from pipeline.artifacts.model_io import example_inputs, flat_outputs
from pipeline.artifacts.tensors import TensorSpec, inputs_of, outputs_of
from pipeline.compression.macs import count_onnx_macs
from pipeline.converters.onnx_export import export
from pipeline.core.errors import ToolError, UserError
from pipeline.core.schema import Field
from pipeline.models.checkpoint import load_model
from pipeline.models.recipe_model import model_key
from pipeline.recipe.config import Config
from pipeline.runtimes import open_session
from pipeline.stages.contract import Context, Stage, StageOutput

PARITY_SAMPLES = 16


SCHEMA = {"export": {"opset": Field(int, 20, check=lambda v: 17 <= v <= 23, hint="between 17 and 23")}}


def settings(recipe: Config, target: Config) -> dict:
    s = {"opset": recipe.data["export"]["opset"], "data": data.fingerprint(recipe)}
    if recipe.data["model_spec"]["source"] == "onnx":
        s["import"] = model_key(recipe)
    return s


def _static_shape(value, batch: int) -> tuple[int, ...]:
    """A graph value's shape with a symbolic batch made `batch` (other unknown sizes stay 0: not known before a run)."""
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (batch if i == 0 else 0) for i, d in enumerate(dims))


def import_file(ctx: Context) -> Artifact:
    """The user's ONNX file as the run's fp32 artifact: external data folded in, checked, loadable by ORT."""
    spec = ctx.recipe.data["model_spec"]
    src = Path(spec["path"])
    path = ctx.out_dir / "onnx-fp32.onnx"
    where = f"{ctx.recipe.path.name}: model.path: {src}"
    try:
        model = onnx.load(str(src))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # damaged protobuf, missing external data, invalid graph
        raise UserError(f"{where}: not a valid ONNX model: {type(exc).__name__}: "
                        f"{(str(exc).strip().splitlines() or [''])[0][:160]}") from None
    weights = {i.name for i in model.graph.initializer}  # opset < 9 files list their weights as inputs too
    first = next((i for i in model.graph.input if i.name not in weights), None)
    elem = first.type.tensor_type.elem_type if first is not None else 0
    if elem != onnx.TensorProto.FLOAT:
        raise UserError(f"{where}: its input is {onnx.TensorProto.DataType.Name(elem)}; the pipeline feeds float32 "
                        "normalised pictures (export the model with a float32 input)")
    onnx.save(model, str(path))
    labels = list(data.label_names(ctx.recipe))
    batch = int(spec["input_shape"][0])
    outs = tuple(TensorSpec(o.name, _static_shape(o, batch), onnx.helper.tensor_dtype_to_np_dtype(
        o.type.tensor_type.elem_type).name) for o in model.graph.output)
    art = Artifact(name="onnx-fp32", path=str(path), format="onnx", precision="fp32", layout=spec["layout"],
                   input_shape=tuple(spec["input_shape"]), macs=count_onnx_macs(str(path)),
                   inputs=(TensorSpec(first.name, tuple(spec["input_shape"]), "float32", spec["layout"]),),
                   outputs=outs,
                   extra={"imported_from": str(src), "opset": max((o.version for o in model.opset_import
                                                                    if o.domain in ("", "ai.onnx")), default=0),
                          "input": data.input_spec(ctx.recipe).to_dict(), "labels": labels,
                          "model": {k: v for k, v in spec.items() if k != "recipe"}})
    art = finalize(art, ("onnx",))
    try:
        open_session(art, threads=ctx.threads)
    except Exception as exc:  # ORT may lack an op or a type the file uses
        raise UserError(f"{where}: ONNX Runtime cannot load it: {type(exc).__name__}: "
                        f"{(str(exc).strip().splitlines() or [''])[0][:160]}") from None
    ctx.log.info("imported %s (%d bytes, opset %s)", src, art.size_bytes, art.extra["opset"])
    return art


def convert(ctx: Context, src: Artifact) -> tuple[Artifact, float]:
    """Export one torch artifact and check it against ONNX Runtime on real inputs; returns (artifact, max diff)."""
    model = load_model(src)
    name = artifact_name("onnx", src.precision, src.pruned, src.quantization,
                         suffix="float" if src.role == "intermediate" else "", lowrank=src.lowrank)
    path = ctx.out_dir / f"{name}.onnx"
    opset = ctx.recipe.data["export"]["opset"]
    in_specs, out_specs = inputs_of(src), outputs_of(src)
    try:
        export(model, example_inputs(in_specs), path, opset, [s.name for s in in_specs],
               [s.name for s in out_specs] if src.outputs else None)
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ToolError(f"to_onnx: {name}: export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") \
            from None
    art = finalize(derived(src, name=name, path=str(path), format="onnx", precision=src.precision, layout="NCHW",
                           reference=src.name, extra={**src.extra, "opset": opset, "exporter": "torch.onnx dynamo"}),
                   ("torch", "onnx", "onnxscript"))
    # Parity on real inputs right at the door: a broken export should fail here, not three stages later.
    xs = [np.ascontiguousarray(x) for x in data.model_inputs(ctx.recipe, data.eval_split(ctx.recipe, PARITY_SAMPLES))]
    session = open_session(art, threads=ctx.threads)
    with torch.no_grad():
        ref = [o.numpy() for o in flat_outputs(model(*[torch.from_numpy(x) for x in xs]))[1]]
    rows = [session.run_all([x[i : i + 1] for x in xs]) for i in range(len(xs[0]))]
    got = [np.concatenate([r[k] for r in rows]) for k in range(len(ref))]
    diff = max(float(np.abs(g - r).max()) for g, r in zip(got, ref, strict=True))
    ctx.log.info("%s: ONNX Runtime vs PyTorch on %d inputs, %d output(s): max abs diff %.3g", name, len(xs[0]),
                 len(ref), diff)
    limit = ctx.recipe.data["tolerances"]["fp32"]["max_abs_diff"]
    if diff > limit:
        raise ToolError(f"to_onnx: {name}: ONNX Runtime output differs from PyTorch by {diff:.3g} "
                        f"(tolerances.fp32.max_abs_diff = {limit:g})")
    return art, diff


def skip(recipe: Config, target: Config) -> str | None:
    if recipe.data["model_spec"]["source"] == "tflite":
        return ("model.source = 'tflite': the TFLite file is the artifact (to_tflite imports it); there is nothing "
                "to export")
    return None


def run(ctx: Context) -> StageOutput:
    source = ctx.recipe.data["model_spec"]["source"]
    if source == "onnx":
        art = import_file(ctx)
        return StageOutput((art,), {"imported": art.extra["imported_from"], "parity_samples": 0})
    if source == "tflite":
        return StageOutput.skip(skip(ctx.recipe, ctx.target))
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
              ("train", "decompose", "prune", "quantize"), settings, run,
              tools=("torch", "onnx", "onnxscript", "onnxruntime"), schema=SCHEMA, skip=skip)

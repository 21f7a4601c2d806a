"""to_tflite: fp32 and fp16 TFLite models from the ONNX artifact through onnx2tf (offline, input NHWC).

For a recipe whose model is a TFLite file (model.source = "tflite"), the file is imported as the run's artifact;
an imported ONNX file is converted like an exported one, and int8 is then calibrated by onnx2tf from it.
"""

from __future__ import annotations

import hashlib
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline import data
from pipeline.artifacts.artifact import Artifact, artifact_name, derived, finalize
from pipeline.artifacts.tensors import CHANNELS_LAST, TensorSpec, inputs_of, outputs_of
from pipeline.converters import onnx2tf_adapter
from pipeline.core.errors import ToolError, UserError
from pipeline.data import calibration_photos
from pipeline.models.recipe_model import model_key
from pipeline.recipe.config import Config
from pipeline.runtimes.tflite_file import io_quantization, tensor_details
from pipeline.stages.contract import Context, Stage, StageOutput


def wanted(target: Config) -> list[str]:
    return [k.split("-")[1] for k in target.data["artifacts"]["build"] if k.startswith("tflite-")]


def settings(recipe: Config, target: Config) -> dict:
    s = {"precisions": wanted(target), "data": data.fingerprint(recipe)}
    if recipe.data["model_spec"]["source"] == "tflite":
        s["import"] = model_key(recipe)
    return s


def calibration_nhwc(recipe: Config) -> list[np.ndarray]:
    """Calibration samples as onnx2tf's TensorFlow graph takes them: pictures NHWC, other inputs as the model has
    them (one array per input)."""
    specs = data.input_tensors(recipe)
    return [np.ascontiguousarray(x.transpose(0, 2, 3, 1) if spec.layout == "NCHW" else x, dtype=np.float32)
            for x, spec in zip(data.calibration_inputs(recipe), specs, strict=True)]


def kept_layout(src: Artifact) -> tuple[str, ...]:
    """The inputs onnx2tf must leave in the model's layout: every 3-D to 5-D input that is not a picture (it never
    moves the axes of 1-D and 2-D inputs)."""
    return tuple(s.name for s in inputs_of(src) if s.layout != "NCHW" and 3 <= len(s.shape) <= 5)




def _file_layout(file_shape: list[int], model_shape: tuple[int, ...], what: str, src: Artifact) -> str:
    """'' when the file keeps the model's shape, the channels-last name when onnx2tf moved channels last (a size the
    model does not fix, 0, matches any)."""

    def same(a, b) -> bool:
        return len(a) == len(b) and all(x == y or x == 0 or y == 0 for x, y in zip(a, b, strict=True))

    if not model_shape or same(model_shape[1:], file_shape[1:]):
        return ""
    rank = len(model_shape)
    moved = [model_shape[0], *model_shape[2:], model_shape[1]] if rank in CHANNELS_LAST else None
    if moved is not None and same(moved[1:], file_shape[1:]):
        return CHANNELS_LAST[rank]
    raise ToolError(f"to_tflite: {src.name}: onnx2tf made {what} of shape {file_shape} from the model's "
                    f"{list(model_shape)}; neither the same nor channels-last")


def _order(rows: list[dict], specs: tuple[TensorSpec, ...], kind: str, src: Artifact) -> list[dict]:
    """The file's tensors in the model's order: by the model's names (the signature keeps them), by position where
    the signature numbers them output_0, output_1 ... (TensorFlow's integer quantization drops the names but keeps
    the model's order), else in the file's own order for one tensor."""
    by_name = {r["name"]: r for r in rows}
    if all(s.name in by_name for s in specs):
        return [by_name[s.name] for s in specs]
    numbered = [f"{kind}_{i}" for i in range(len(specs))]
    if len(rows) == len(specs) and all(n in by_name for n in numbered):
        return [by_name[n] for n in numbered]
    if len(rows) == len(specs) == 1:
        return rows
    raise ToolError(f"to_tflite: {src.name}: cannot tell which of the TFLite file's {len(rows)} {kind}s "
                    f"({', '.join(r['name'] for r in rows)}) is which of the model's "
                    f"({', '.join(s.name for s in specs)})")


def file_tensors(dest: Path, src: Artifact) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], dict, dict]:
    """The converted file's inputs and outputs as specs, in the model's order and under its names (onnx2tf lists
    both sorted by name), what onnx2tf did to each tensor's layout, and the file's tensor indices in that order."""
    file_in, file_out = tensor_details(dest)
    done: dict[str, str] = {}
    indices: dict[str, list[int]] = {}

    def match(rows: list[dict], specs: tuple[TensorSpec, ...], kind: str) -> tuple[TensorSpec, ...]:
        ordered = _order(rows, specs, kind, src)
        indices[f"{kind}s"] = [r["index"] for r in ordered]
        out = []
        for row, spec in zip(ordered, specs, strict=True):
            layout = _file_layout(row["shape"], spec.shape, f"{kind} {spec.name!r}", src)
            if layout:
                done[spec.name] = f"{layout}: channels moved last by onnx2tf" + (
                    "" if spec.layout == "NCHW" else "; the pipeline moves them back")
            elif len(spec.shape) >= 3 and spec.layout != "NCHW":
                done[spec.name] = "kept as the model has it"
            out.append(TensorSpec(spec.name, tuple(row["shape"]), row["dtype"], layout, row["quantization"]))
        return tuple(out)

    return match(file_in, inputs_of(src), "input"), match(file_out, outputs_of(src), "output"), done, indices


def _outputs(src: Artifact, precisions: list[str]) -> list[str]:
    """Which TFLite precisions to make from this ONNX file."""
    if src.role == "intermediate":
        return ["int8"] if src.quantization != "none" and "int8" in precisions else []
    if "imported_from" in src.extra:  # no PyTorch model to quantize: onnx2tf calibrates the file itself
        return [p for p in precisions if p in ("fp32", "fp16", "int8")]
    return [p for p in precisions if p in ("fp32", "fp16")]


def _tflite_precision(path: Path) -> str:
    """int8 for integer input, fp16 when weights are stored as float16 (dequantized at load), else fp32."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    if np.dtype(interp.get_input_details()[0]["dtype"]) == np.int8:
        return "int8"
    if any(np.dtype(t["dtype"]) == np.float16 for t in interp.get_tensor_details()):
        return "fp16"
    return "fp32"


def import_file(ctx: Context) -> list[Artifact]:
    """The user's TFLite file as the run's artifact, with its tensors, layout and quantization read from the file; a
    float16-weight file comes with its own fp32 (the weights widened, exact; pipeline/converters/tflite_fp32.py) as
    the reference its every output is measured against, an artifact of the run if the target builds tflite-fp32."""
    spec = ctx.recipe.data["model_spec"]
    src = Path(spec["path"])
    where = f"{ctx.recipe.path.name}: model.path: {src}"
    try:
        precision = _tflite_precision(src)
        dtype, in_q, out_q = io_quantization(src)
        file_in, file_out = tensor_details(src)
    except Exception as exc:  # not a flatbuffer LiteRT can load
        raise UserError(f"{where}: LiteRT cannot load it: {type(exc).__name__}: "
                        f"{(str(exc).strip().splitlines() or [''])[0][:160]}") from None
    if dtype not in ("float32", "int8"):
        raise UserError(f"{where}: its input is {dtype}; the pipeline feeds float32 or int8 (quantized) pictures")
    if len(file_in) != 1:
        raise UserError(f"{where}: it takes {len(file_in)} inputs; a TFLite file from outside is fed pictures, one "
                        "input (convert a multi-input model from its PyTorch or ONNX source)")
    ins = (TensorSpec(file_in[0]["name"], tuple(spec["input_shape"]), dtype, spec["layout"], in_q),)
    outs = tuple(TensorSpec(r["name"], tuple(r["shape"]), r["dtype"], "", r["quantization"]) for r in file_out)
    base = Artifact(name="", path="", format="tflite", precision=precision, layout=spec["layout"],
                    input_shape=tuple(spec["input_shape"]), input_dtype=dtype, input_quantization=in_q,
                    output_quantization=out_q, inputs=ins, outputs=outs,
                    extra={"imported_from": str(src), "input": data.input_spec(ctx.recipe).to_dict(),
                           "labels": list(data.label_names(ctx.recipe)),
                           "model": {k: v for k, v in spec.items() if k != "recipe"}})
    arts = []
    if precision == "fp16":
        arts.append(_own_fp32(ctx, src, base))
    name = artifact_name("tflite", precision)
    dest = ctx.out_dir / f"{name}.tflite"
    shutil.copyfile(src, dest)
    ctx.log.info("imported %s as %s", src, name)
    arts.append(finalize(replace(base, name=name, path=str(dest), reference=arts[0].name if arts else ""),
                         ("ai-edge-litert",)))
    return arts


def _own_fp32(ctx: Context, src: Path, base: Artifact) -> Artifact:
    """The float16-weight file with its weights widened to float32: the reference of its outputs, shipped and
    measured only if the target builds tflite-fp32."""
    from pipeline.converters.tflite_fp32 import widen_fp16_weights

    name = artifact_name("tflite", "fp32")
    dest = ctx.out_dir / f"{name}.tflite"
    widened = widen_fp16_weights(src, dest)
    ctx.log.info("%s: %d float16 weights widened to float32 as %s, the reference of its outputs", src.name, widened,
                 name)
    role = "model" if "fp32" in wanted(ctx.target) else "intermediate"
    extra = {**base.extra, "widened": f"{widened} float16 weights of the imported file stored as float32 (exact)"}
    return finalize(replace(base, name=name, path=str(dest), precision="fp32", role=role, extra=extra),
                    ("ai-edge-litert", "tensorflow-cpu"))


def _keep_float(src: Artifact, work: Path, files: dict[str, Path]) -> list[str]:
    """Replace onnx2tf's int8 file by one with the fallback layers' ops in float; returns their TFLite names."""
    import onnx

    from pipeline.converters import tflite_fallback
    from pipeline.layers.onnx_layers import node_module

    scopes = set(src.extra["float_scopes"])
    nodes = [n.name for n in onnx.load(src.path).graph.node
             if n.op_type in ("Conv", "Gemm", "MatMul") and node_module(n) in scopes]
    if not nodes:
        raise ToolError(f"to_tflite: {src.name}: no ONNX node of the float layers {', '.join(sorted(scopes))}")
    out = work / "int8_with_float_layers.tflite"
    kept = tflite_fallback.convert(work / "tf", work / "calibration.npy", Path(src.path), nodes, out)
    files["int8"] = out
    return kept


def _same_file_groups(jobs: list[tuple[Artifact, list[str]]]) -> list[list[tuple[Artifact, list[str]]]]:
    """Jobs grouped by the bytes of their ONNX file: PTQ's float model is the pruned model itself, so its int8 and
    the pruned model's fp32/fp16 come from one onnx2tf conversion instead of two."""
    groups: dict[str, list] = {}
    for src, precisions in jobs:
        groups.setdefault(hashlib.sha256(Path(src.path).read_bytes()).hexdigest(), []).append((src, precisions))
    return list(groups.values())


def convert(ctx: Context, group: list[tuple[Artifact, list[str]]], calib: list[np.ndarray]) -> list[Artifact]:
    """One onnx2tf conversion of a group's ONNX file; each job of the group takes its precisions from it."""
    first = group[0][0]
    work = ctx.out_dir / f"onnx2tf-{first.name}"
    int8 = any("int8" in p for _, p in group)
    keep = kept_layout(first)
    if "imported_from" in first.extra:  # a user's ONNX file: onnxsim first, as onnx2tf does by default
        files = onnx2tf_adapter.convert(Path(first.path), work, calib, int8=int8, keep_layout=keep)
    else:
        try:  # our exporter's file needs no onnxsim (see onnx2tf_adapter.convert)
            files = onnx2tf_adapter.convert(Path(first.path), work, calib, int8=int8, simplify=False, keep_layout=keep)
        except ToolError as exc:
            ctx.log.warning("to_tflite: %s: onnx2tf failed without onnxsim (%s); converting again with it",
                            first.name, exc)
            shutil.rmtree(work, ignore_errors=True)
            files = onnx2tf_adapter.convert(Path(first.path), work, calib, int8=int8, keep_layout=keep)
    arts = []
    for src, precisions in group:
        own = dict(files)  # _keep_float swaps in this job's own int8 file
        kept = _keep_float(src, work, own) if "int8" in precisions and src.extra.get("float_scopes") else []
        arts += [_artifact(ctx, src, precision, own, kept, len(calib[0])) for precision in precisions]
    shutil.rmtree(work, ignore_errors=True)  # SavedModel and the other variants: not artifacts of this run
    return arts


def _artifact(ctx: Context, src: Artifact, precision: str, files: dict[str, Path], kept: list[str],
              calibration_images: int) -> Artifact:
    if precision not in files:
        raise ToolError(f"to_tflite: {src.name}: onnx2tf wrote no {precision} model (looked for *"
                        f"{onnx2tf_adapter.VARIANTS[precision]} in {Path(src.path).name}'s conversion)")
    # an imported ONNX file's int8 is onnx2tf's post-training quantization of it
    quantization = "ptq" if precision == "int8" and "imported_from" in src.extra else src.quantization
    name = artifact_name("tflite", precision, src.pruned, quantization, lowrank=src.lowrank)
    dest = ctx.out_dir / f"{name}.tflite"
    shutil.copyfile(files[precision], dest)
    ins, outs, layouts, indices = file_tensors(dest, src)
    extra = {"converter": "onnx2tf", "source": src.name, "tflite_tensor_indices": indices}
    if layouts:
        extra["onnx2tf_layouts"] = layouts
    if precision == "int8":
        extra["quantized_by"] = (f"onnx2tf full-integer quantization (per-channel weights, int8 input and output) "
                                 f"{calibration_photos.describe(data.has_train(ctx.recipe), calibration_images)}, of "
                                 f"{src.extra.get('quantized_by', 'the float model')}; onnx2tf cannot carry "
                                 "PT2E ranges (make evidence-qdq)")
        if kept:
            extra["quantized_by"] += (f"; kept in float: {', '.join(src.extra['float_layers'])} (quantize.fallback;"
                                      " TensorFlow's quantization debugger, denylisted ops)")
            extra["float_tensors"] = kept
    if "imported_from" in src.extra:
        extra.update(input=src.extra["input"], labels=src.extra["labels"])
    return finalize(derived(
        src, name=name, path=str(dest), format="tflite", precision=precision, layout=ins[0].layout,
        input_shape=ins[0].shape, input_dtype=ins[0].dtype, input_quantization=ins[0].quantization,
        output_quantization=outs[0].quantization, inputs=ins, outputs=outs,
        reference=src.reference or src.name, role="model", extra=extra, quantization=quantization,
    ), ("onnx2tf", "tensorflow-cpu", "onnx"))


def run(ctx: Context) -> StageOutput:
    if ctx.recipe.data["model_spec"]["source"] == "tflite":
        arts = import_file(ctx)
        return StageOutput(tuple(arts), {"imported": arts[0].extra["imported_from"],
                                         "converted": [a.name for a in arts if a.precision != arts[-1].precision]})
    precisions = wanted(ctx.target)
    jobs = [(src, _outputs(src, precisions)) for src in ctx.upstream_artifacts() if src.format == "onnx"]
    jobs = [(src, p) for src, p in jobs if p]
    if not jobs:
        return StageOutput.skip("the target builds no TFLite artifact")
    calib = calibration_nhwc(ctx.recipe)
    groups = _same_file_groups(jobs)
    # each conversion is a child process of its own: run up to compute.jobs of them at once
    with ThreadPoolExecutor(max_workers=min(ctx.target.data["compute"]["jobs"], len(groups))) as pool:
        converted = list(pool.map(lambda group: convert(ctx, group, calib), groups))
    arts = [a for group_arts in converted for a in group_arts]
    warned = data.caveats.calibration(ctx.recipe, len(calib[0]), any("int8" in p for _, p in jobs))
    return StageOutput(tuple(arts), {"precisions": precisions, "converted": [a.name for a in arts], "warnings": warned})


STAGE = Stage("to_tflite", "TFLite fp32/fp16, and int8 from the quantized float models, via onnx2tf (NHWC input)",
              ("to_onnx",), settings, run,
              tools=("onnx2tf", "tensorflow-cpu", "tf-keras", "onnx", "onnxsim", "onnx-graphsurgeon", "ai-edge-litert"))

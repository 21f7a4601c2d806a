"""quantize: int8 by post-training quantization and by quantization-aware training (PT2E, XNNPACK quantizer).

For each method it writes the PyTorch quantized reference (.pt2), which to_executorch lowers to the int8 ExecuTorch
program (.pte) that must reproduce it, and the float model that TFLite's int8 conversion calibrates (role
"intermediate": for PTQ the compressed model itself, for QAT its QAT-tuned weights). The quantized source is the
pruned model when the recipe prunes, else the trained one.
"""

from __future__ import annotations

import shutil

import torch

from pipeline import data
from pipeline.artifacts.artifact import Artifact, artifact_name, derived, finalize
from pipeline.compression.finetune import finetune_schema
from pipeline.compression.quantization import MAX_BATCH, ptq, qat, weighted_layers
from pipeline.compression.sensitivity import fallback, rank
from pipeline.core.errors import ToolError
from pipeline.core.progress import progress
from pipeline.core.schema import Field, non_negative, positive
from pipeline.data import calibration_photos
from pipeline.models.checkpoint import load_model, save_state_dict
from pipeline.models.recipe_model import skip_reason
from pipeline.recipe.config import Config
from pipeline.runtimes.pt2_file import make_reproducible
from pipeline.stages.contract import Context, Stage, StageOutput
from pipeline.training.loop import Distillation, TrainSettings, predict_logits

WEIGHTS = ("per-channel symmetric int8 weights, per-tensor int8 activations (XNNPACKQuantizer), taken after a ReLU6 "
           "that follows a convolution (conv_clamp)")


def wanted(target: Config) -> dict[str, bool]:
    build = target.data["artifacts"]["build"]
    return {"pte": "pte-int8" in build, "tflite": "tflite-int8" in build}


SCHEMA = {
    "quantize": {
        "methods": Field(list, list, choices=("ptq", "qat")),
        "max_accuracy_drop": Field(float, 1.0, check=non_negative, hint=">= 0 (points against the fp32 model)"),
        "sensitivity": Field(bool, False),  # rank layers by what int8 costs at each (one PTQ per layer)
        "fallback": Field(str, "none", choices=("none", "auto")),  # PTQ: most sensitive layers float until it passes
        "max_float_layers": Field(int, 3, check=positive, hint="> 0"),
        "sensitivity_images": Field(int, 64, check=positive, hint="> 0 (calibration images the ranking is "
                                    "measured on)"),
        "qat": finetune_schema(epochs=0.3, lr=0.005, weight=0.5),
    },
}


def settings(recipe: Config, target: Config) -> dict:
    cfg = recipe.data["quantize"]
    # the limit is a gate only, unless fallback uses it to decide which layers stay float
    quantize_cfg = {k: v for k, v in cfg.items() if k != "max_accuracy_drop" or cfg["fallback"] == "auto"}
    return {"quantize": quantize_cfg, "train": recipe.data["train"], "wanted": wanted(target),
            "data": data.fingerprint(recipe)}


def _source(ctx: Context) -> Artifact:
    """The most compressed float model: pruned, else decomposed, else the trained one."""
    for stage in ("prune", "decompose"):
        found = [a for a in ctx.inputs[stage].artifacts if a.format == "torch"]
        if found:
            return found[0]
    return ctx.inputs["train"].artifact("torch-fp32")


def qat_settings(recipe: Config) -> TrainSettings:
    q = recipe.data["quantize"]["qat"]
    base = recipe.data["train"]
    return TrainSettings(epochs=q["epochs"], batch_size=base["batch_size"], lr=q["lr"], weight_decay=0.0,
                         schedule="cosine", flip=base["flip"], seed=base["seed"] + 2,
                         max_train_samples=base["max_train_samples"])


def _save_reference(converted: torch.nn.Module, example_batch: torch.Tensor, path) -> None:
    program = torch.export.export(converted, (example_batch,),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},))
    for module in program.graph_module.modules():  # provenance records hold id()s of graphs: differ every run
        if isinstance(module, torch.fx.GraphModule):
            for node in module.graph.nodes:
                node.meta.pop("from_node", None)
    torch.export.save(program, str(path))
    make_reproducible(path)  # torch writes a random serialization id into every save


def _sensitivity(ctx: Context, model: torch.nn.Module, calib: torch.Tensor) -> dict:
    probe = calib[: ctx.recipe.data["quantize"]["sensitivity_images"]]
    layers = weighted_layers(model)
    ctx.log.info("sensitivity: quantizing each of %d layers alone, output SQNR on %d calibration images",
                 len(layers), len(probe))
    with progress(total=len(layers), desc="sensitivity", unit="layer") as bar:
        ranking = rank(model, calib, probe, progress=lambda name: bar.update(1))
    top = ", ".join(f"{r['layer']} {r['sqnr_db']:.1f} dB" for r in ranking["layers"][:3])
    ctx.log.info("sensitivity: all int8 %.1f dB; most sensitive: %s", ranking["all_int8_sqnr_db"], top)
    return ranking


def float_scopes(model: torch.nn.Module, example: torch.Tensor, layers: list[str]) -> list[str]:
    """The module names exported ONNX nodes of `layers` carry: each layer and the BatchNorm folded into it."""
    from pipeline.layers.torch_layers import capture

    flow = capture(model, example)
    return sorted({name for layer in layers for name in (layer, flow.folded_into(layer)) if name})


def _accuracy(model: torch.nn.Module, x: torch.Tensor, labels) -> float:
    return float((predict_logits(model, x).argmax(1) == labels).mean())


def _fallback(ctx: Context, model, calib, converted, ranking: dict | None, evals, ex) -> tuple:
    """PTQ with the most sensitive layers in float while the int8 accuracy gate fails; (converted, ranking, record)."""
    cfg = ctx.recipe.data["quantize"]
    if evals.labels is None:
        return converted, ranking, {"applied": False, "why": "the evaluation set has no labels to check the gate"}
    fp32 = ctx.inputs["train"].data.get("accuracy")  # the train stage measured it on this same split
    if fp32 is None:
        fp32 = _accuracy(load_model(ctx.inputs["train"].artifact("torch-fp32")), ex, evals.labels)
    acc = _accuracy(converted, ex, evals.labels)
    record = {"fp32_accuracy": fp32, "all_int8_accuracy": acc, "limit_points": cfg["max_accuracy_drop"]}
    if 100 * (fp32 - acc) <= cfg["max_accuracy_drop"]:
        return converted, ranking, {**record, "applied": False, "why": "all-int8 passes the gate", "float_layers": []}
    ranking = ranking or _sensitivity(ctx, model, calib)
    converted, kept = fallback(model, calib, ranking,
                               lambda m: 100 * (fp32 - _accuracy(m, ex, evals.labels)) <= cfg["max_accuracy_drop"],
                               cfg["max_float_layers"])
    acc = _accuracy(converted, ex, evals.labels)
    passed = 100 * (fp32 - acc) <= cfg["max_accuracy_drop"]
    (ctx.log.info if passed else ctx.log.warning)(
        "fallback: %s kept in float: accuracy %.4f (all int8 %.4f, fp32 %.4f); %s", ", ".join(kept), acc,
        record["all_int8_accuracy"], fp32, "the gate passes" if passed else
        f"still more than {cfg['max_accuracy_drop']} points below fp32 with {len(kept)} float layer(s) "
        "(quantize.max_float_layers)")
    return converted, ranking, {**record, "applied": True, "float_layers": kept, "accuracy": acc, "passed": passed}


def _quantize(ctx: Context, method: str, model: torch.nn.Module, calib: torch.Tensor):
    recipe = ctx.recipe
    if method == "ptq":
        return ptq(model, calib), model, f"PT2E post-training quantization, {len(calib)} calibration images"
    cfg = recipe.data["quantize"]["qat"]
    split = data.train_split(recipe)
    x = torch.from_numpy(data.to_tensor(split.images, data.input_spec(recipe)))
    y = torch.from_numpy(split.labels)
    teacher = load_model(ctx.inputs["train"].artifact("torch-fp32")) if cfg["distill"] else None
    distill = Distillation(teacher, cfg["distill_temperature"], cfg["distill_weight"]) if teacher else None
    converted, tuned = qat(model, x, y, qat_settings(recipe), distill=distill)
    how = f"PT2E quantization-aware training, {cfg['epochs']:g} epochs" + (", distilled from fp32" if distill else "")
    return converted, tuned, how


def skip(recipe: Config, target: Config) -> str | None:
    reason = skip_reason(recipe, "quantize")
    if reason:
        return reason
    if not recipe.data["quantize"]["methods"] or not any(wanted(target).values()):
        return "no quantization method in the recipe or no int8 artifact in the target"
    return None


def run(ctx: Context) -> StageOutput:
    cfg = ctx.recipe.data["quantize"]
    want = wanted(ctx.target)
    reason = skip(ctx.recipe, ctx.target)
    if reason:
        return StageOutput.skip(reason)
    src = _source(ctx)
    model = load_model(src)
    spec = data.input_spec(ctx.recipe)
    calib = torch.from_numpy(data.to_tensor(data.calibration_images(ctx.recipe), spec))
    calibrated = calibration_photos.describe(data.has_train(ctx.recipe), len(calib))
    (ctx.log.info if data.has_train(ctx.recipe) or calibration_photos.installed() else ctx.log.warning)(
        "int8: %s", calibrated)
    evals = data.eval_split(ctx.recipe)
    ex = torch.from_numpy(data.to_tensor(evals.images, spec))
    arts: list[Artifact] = []
    summary: dict = {"source": src.name, "methods": {}}
    ranking = _sensitivity(ctx, model, calib) if cfg["sensitivity"] else None
    for method in cfg["methods"]:
        try:
            converted, float_model, how = _quantize(ctx, method, model, calib)
            if method == "ptq" and cfg["fallback"] == "auto":
                converted, ranking, summary["fallback"] = _fallback(ctx, model, calib, converted, ranking, evals, ex)
                if summary["fallback"].get("float_layers"):
                    how += f"; kept in float: {', '.join(summary['fallback']['float_layers'])} (fallback)"
        except Exception as exc:
            raise ToolError(f"quantize: {method} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") \
                from None
        measured = summary.get("fallback", {}) if method == "ptq" else {}  # the fallback check scored this model
        acc = measured.get("accuracy", measured.get("all_int8_accuracy"))
        if acc is None and evals.labels is not None:
            acc = _accuracy(converted, ex, evals.labels)
        summary["methods"][method] = {"how": how, "reference_accuracy": acc}
        ctx.log.info("%s: %s; PyTorch int8 reference accuracy %s", method, how, f"{acc:.4f}" if acc else "-")
        common = {"pruned": src.pruned, "lowrank": src.lowrank, "quantization": method, "params": src.params,
                  "macs": src.macs}
        ref_name = artifact_name("pt2", "int8", src.pruned, method, lowrank=src.lowrank)
        ref_path = ctx.out_dir / f"{ref_name}.pt2"
        _save_reference(converted, calib[:2], ref_path)
        arts.append(Artifact(name=ref_name, path=str(ref_path), format="pt2", precision="int8", layout="NCHW",
                             input_shape=src.input_shape, **common,
                             extra={"quantized_by": f"{how}; {WEIGHTS}" + (f"; {calibrated}" if method == "ptq"
                                                                            else ""), "max_batch": MAX_BATCH,
                                    "source": src.name}))
        if want["tflite"]:
            name = artifact_name("torch", "fp32", src.pruned, method, suffix="float", lowrank=src.lowrank)
            path = ctx.out_dir / f"{name}.pt"
            if float_model is model:
                shutil.copyfile(src.path, path)
            else:
                save_state_dict(float_model, path)
            float_source = (f"the QAT-tuned float weights ({how})" if method == "qat"
                            else f"{src.name} (no PT2E involved)")
            extra = {**src.extra, "int8_via": method, "quantized_by": float_source}
            kept = summary.get("fallback", {}).get("float_layers") if method == "ptq" else None
            if kept:  # to_tflite keeps the same layers float in the int8 file
                extra.update(float_layers=kept, float_scopes=float_scopes(model, calib[:1], kept))
            arts.append(derived(src, name=name, path=str(path), format="torch", precision="fp32", layout="NCHW",
                                quantization=method, role="intermediate", reference="", extra=extra))
    if ranking is not None:
        summary["sensitivity"] = ranking
    tools = ("torch", "torchao", "executorch")
    return StageOutput(tuple(finalize(a, tools) for a in arts), summary)


STAGE = Stage("quantize", "int8 by PTQ and QAT (PT2E, XNNPACK quantizer): the int8 references (.pt2)",
              ("train", "decompose", "prune"), settings, run, tools=("torch", "torchao", "executorch"), trains=True,
              schema=SCHEMA, skip=skip)

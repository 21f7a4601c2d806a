"""quantize: int8 by post-training quantization and by quantization-aware training (PT2E, XNNPACK quantizer).

For each method it writes the PyTorch quantized reference (.pt2), which to_executorch lowers to the int8 ExecuTorch
program (.pte) that must reproduce it, and the float model that TFLite's int8 conversion calibrates (role
"intermediate": for PTQ the compressed model itself, for QAT its QAT-tuned weights). The quantized source is the
pruned model when the recipe prunes, else the trained one.
"""

from __future__ import annotations

import shutil

import numpy as np
import torch

from pipeline import data
from pipeline.artifacts.artifact import Artifact, artifact_name, derived, finalize
from pipeline.artifacts.tensors import outputs_of
from pipeline.compression.finetune import finetune_schema
from pipeline.compression.quantization import MAX_BATCH, count, ptq, qat, rows, weighted_layers
from pipeline.compression.sensitivity import fallback, rank
from pipeline.core.errors import ToolError
from pipeline.core.progress import progress
from pipeline.core.schema import Field, non_negative, positive
from pipeline.data import calibration_photos
from pipeline.metrics import task
from pipeline.models.checkpoint import load_model, save_state_dict
from pipeline.models.recipe_model import skip_reason
from pipeline.recipe.config import Config
from pipeline.runtimes.pt2_file import make_reproducible
from pipeline.stages.contract import Context, Stage, StageOutput
from pipeline.training.loop import Distillation, TrainSettings, predict
from pipeline.training.recipe_data import torch_inputs, train_settings

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
    return train_settings(recipe, {"epochs": q["epochs"], "batch_size": base["batch_size"], "lr": q["lr"],
                                   "weight_decay": 0.0, "schedule": "cosine", "flip": base["flip"],
                                   "seed": base["seed"] + 2, "max_train_samples": base["max_train_samples"]})


def _save_reference(converted: torch.nn.Module, example_batch: torch.Tensor | list[torch.Tensor], path) -> None:
    examples = rows(example_batch, 0, MAX_BATCH)  # one tensor or one per input
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(converted, tuple(examples), dynamic_shapes=tuple({0: batch} for _ in examples))
    for module in program.graph_module.modules():  # provenance records hold id()s of graphs: differ every run
        if isinstance(module, torch.fx.GraphModule):
            for node in module.graph.nodes:
                node.meta.pop("from_node", None)
    torch.export.save(program, str(path))
    make_reproducible(path)  # torch writes a random serialization id into every save


def _sensitivity(ctx: Context, model: torch.nn.Module, calib: list[torch.Tensor]) -> dict:
    probe = rows(calib, 0, ctx.recipe.data["quantize"]["sensitivity_images"])
    layers = weighted_layers(model)
    ctx.log.info("sensitivity: quantizing each of %d layers alone, output SQNR on %d calibration images",
                 len(layers), len(probe))
    with progress(total=len(layers), desc="sensitivity", unit="layer") as bar:
        ranking = rank(model, calib, probe, progress=lambda name: bar.update(1))
    top = ", ".join(f"{r['layer']} {r['sqnr_db']:.1f} dB" for r in ranking["layers"][:3])
    ctx.log.info("sensitivity: all int8 %.1f dB; most sensitive: %s", ranking["all_int8_sqnr_db"], top)
    return ranking


def float_scopes(model: torch.nn.Module, example: list[torch.Tensor], layers: list[str]) -> list[str]:
    """The module names exported ONNX nodes of `layers` carry: each layer and the BatchNorm folded into it."""
    from pipeline.layers.torch_layers import capture

    flow = capture(model, example)
    return sorted({name for layer in layers for name in (layer, flow.folded_into(layer)) if name})


def _accuracy(model: torch.nn.Module, x: list[torch.Tensor], ctx: Context, labels) -> float:
    """The recipe's task metric of `model` on the evaluation inputs (top-1 accuracy for classifiers)."""
    metric = task.resolved(ctx.recipe.data["metric_spec"], labels)
    names = [s.name for s in outputs_of(ctx.inputs["train"].artifact("torch-fp32"))]
    return task.score(metric, predict(model, x), names, labels)


def _fallback(ctx: Context, model, calib, converted, ranking: dict | None, evals, ex) -> tuple:
    """PTQ with the most sensitive layers in float while the int8 accuracy gate fails; (converted, ranking, record)."""
    cfg = ctx.recipe.data["quantize"]
    if evals.labels is None:
        return converted, ranking, {"applied": False, "why": "the evaluation set has no labels to check the gate"}
    metric = task.resolved(ctx.recipe.data["metric_spec"], evals.labels)
    fp32 = ctx.inputs["train"].data.get("accuracy")  # the train stage measured it on this same split
    if fp32 is None:
        fp32 = _accuracy(load_model(ctx.inputs["train"].artifact("torch-fp32")), ex, ctx, evals.labels)
    acc = _accuracy(converted, ex, ctx, evals.labels)

    def within(value: float) -> bool:
        return task.drop(metric, fp32, value) <= cfg["max_accuracy_drop"]

    record = {"fp32_accuracy": fp32, "all_int8_accuracy": acc, "limit_points": cfg["max_accuracy_drop"]}
    if within(acc):
        return converted, ranking, {**record, "applied": False, "why": "all-int8 passes the gate", "float_layers": []}
    ranking = ranking or _sensitivity(ctx, model, calib)
    converted, kept = fallback(model, calib, ranking, lambda m: within(_accuracy(m, ex, ctx, evals.labels)),
                               cfg["max_float_layers"])
    acc = _accuracy(converted, ex, ctx, evals.labels)
    passed = within(acc)
    (ctx.log.info if passed else ctx.log.warning)(
        "fallback: %s kept in float: accuracy %.4f (all int8 %.4f, fp32 %.4f); %s", ", ".join(kept), acc,
        record["all_int8_accuracy"], fp32, "the gate passes" if passed else
        f"still more than {cfg['max_accuracy_drop']} points below fp32 with {len(kept)} float layer(s) "
        "(quantize.max_float_layers)")
    return converted, ranking, {**record, "applied": True, "float_layers": kept, "accuracy": acc, "passed": passed}


def _quantize(ctx: Context, method: str, model: torch.nn.Module, calib: list[torch.Tensor]):
    recipe = ctx.recipe
    if method == "ptq":
        return ptq(model, calib), model, (f"PT2E post-training quantization, {count(calib)} calibration "
                                          f"{'images' if data.is_pictures(recipe) else 'samples'}")
    cfg = recipe.data["quantize"]["qat"]
    split = data.train_split(recipe)
    x = torch_inputs(recipe, split)
    y = torch.from_numpy(np.asarray(split.labels))
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
    calib = [torch.from_numpy(np.ascontiguousarray(x)) for x in data.calibration_inputs(ctx.recipe)]
    calibrated = calibration_photos.describe(data.has_train(ctx.recipe), count(calib))
    (ctx.log.info if data.has_train(ctx.recipe) or calibration_photos.installed() else ctx.log.warning)(
        "int8: %s", calibrated)
    evals = data.eval_split(ctx.recipe)
    ex = torch_inputs(ctx.recipe, evals)
    arts: list[Artifact] = []
    summary: dict = {"source": src.name, "methods": {}}
    summary["warnings"] = data.caveats.calibration(ctx.recipe, count(calib))
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
            acc = _accuracy(converted, ex, ctx, evals.labels)
        summary["methods"][method] = {"how": how, "reference_accuracy": acc}
        ctx.log.info("%s: %s; PyTorch int8 reference accuracy %s", method, how, f"{acc:.4f}" if acc else "-")
        common = {"pruned": src.pruned, "lowrank": src.lowrank, "quantization": method, "params": src.params,
                  "macs": src.macs}
        ref_name = artifact_name("pt2", "int8", src.pruned, method, lowrank=src.lowrank)
        ref_path = ctx.out_dir / f"{ref_name}.pt2"
        _save_reference(converted, rows(calib, 0, 2), ref_path)
        arts.append(Artifact(name=ref_name, path=str(ref_path), format="pt2", precision="int8", layout=src.layout,
                             input_shape=src.input_shape, inputs=src.inputs, outputs=src.outputs, **common,
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
                extra.update(float_layers=kept, float_scopes=float_scopes(model, rows(calib, 0, 1), kept))
            arts.append(derived(src, name=name, path=str(path), format="torch", precision="fp32", layout=src.layout,
                                quantization=method, role="intermediate", reference="", extra=extra))
    if ranking is not None:
        summary["sensitivity"] = ranking
    tools = ("torch", "torchao", "executorch")
    return StageOutput(tuple(finalize(a, tools) for a in arts), summary)


STAGE = Stage("quantize", "int8 by PTQ and QAT (PT2E, XNNPACK quantizer): the int8 references (.pt2)",
              ("train", "decompose", "prune"), settings, run, tools=("torch", "torchao", "executorch"), trains=True,
              schema=SCHEMA, skip=skip)

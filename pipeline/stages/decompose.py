"""decompose: low-rank factorisation of the trained model's convolutions and linear layers, then fine-tuning
distilled from it. Off by default; when on, pruning (if any) starts from the factorised model."""

from __future__ import annotations

from pipeline import data
from pipeline.artifacts.artifact import artifact_name, derived, finalize
from pipeline.artifacts.model_io import example_inputs
from pipeline.artifacts.tensors import inputs_of, outputs_of
from pipeline.compression.finetune import finetune_schema, recover, training_tensors
from pipeline.compression.lowrank import LowRankError, LowRankSettings, decompose
from pipeline.compression.macs import count_macs
from pipeline.core.errors import ConfigError, UserError
from pipeline.core.schema import Field, non_negative
from pipeline.models.checkpoint import check_rebuild, load_model, save_state_dict
from pipeline.models.recipe_model import skip_reason
from pipeline.recipe.config import Config
from pipeline.stages.contract import Context, Stage, StageOutput

SCHEMA = {
    "decompose": {  # low-rank factorisation (pipeline/compression/lowrank.py), before pruning
        "enabled": Field(bool, False),
        "energy": Field(float, 0.9, check=lambda v: 0.0 < v <= 1.0, hint="in (0, 1]: kept share of squared "
                        "singular values per layer"),
        "macs_factor": Field(float, 0.0, check=lambda v: v == 0.0 or v > 1.0, hint="0 (use energy) or > 1"),
        "min_saving": Field(float, 0.1, check=lambda v: 0.0 <= v < 1.0, hint="in [0, 1): share of a layer's MACs "
                            "factorising must save"),
        "min_macs": Field(int, 100_000, check=non_negative, hint=">= 0 (MACs per image below which a layer is "
                          "left alone)"),
        "ignore": Field(list, lambda: ["classifier"]),
        "max_accuracy_drop": Field(float, 1.0, check=non_negative, hint=">= 0 (points against the fp32 model)"),
        "finetune": finetune_schema(epochs=1.0, lr=0.01, weight=0.7),
    },
}


def settings(recipe: Config, target: Config) -> dict:
    cfg = recipe.data["decompose"]
    if not cfg["enabled"]:
        return {"enabled": False}  # nothing else about an unused table may change downstream cache keys
    # the accuracy limit is a gate checked by evaluate: changing it must not redo the factorisation
    return {"decompose": {k: v for k, v in cfg.items() if k != "max_accuracy_drop"}, "train": recipe.data["train"],
            "data": data.fingerprint(recipe)}


def lowrank_settings(cfg: dict) -> LowRankSettings:
    return LowRankSettings(energy=cfg["energy"], macs_factor=cfg["macs_factor"], min_saving=cfg["min_saving"],
                           min_macs=cfg["min_macs"], ignore=tuple(cfg["ignore"]))


def skip(recipe: Config, target: Config) -> str | None:
    reason = skip_reason(recipe, "decompose")
    return reason or (None if recipe.data["decompose"]["enabled"] else "decompose.enabled = false")


def run(ctx: Context) -> StageOutput:
    cfg = ctx.recipe.data["decompose"]
    reason = skip(ctx.recipe, ctx.target)
    if reason:
        return StageOutput.skip(reason)
    src = ctx.inputs["train"].artifact("torch-fp32")
    teacher = load_model(src)
    model = load_model(src)
    x, y = training_tensors(ctx.recipe)
    example = example_inputs(inputs_of(src))
    try:
        model, report = decompose(model, example, lowrank_settings(cfg))
    except KeyError as exc:
        raise ConfigError(ctx.recipe.path, "decompose.ignore", f"{exc.args[0]!r} names no layer of the model") \
            from None
    except LowRankError as exc:
        raise UserError(f"{ctx.recipe.path.name}: decompose: {src.extra['arch']}: {exc}") from None
    ctx.log.info("factorised %d layers at energy %.3f (%d left): MACs %d -> %d (%.2fx fewer), params %d -> %d",
                 len(report["layers"]), report["energy"], len(report["left_as_is"]), report["before"]["macs"],
                 report["after"]["macs"], report["macs_reduction"], report["before"]["params"],
                 report["after"]["params"])
    recover(ctx.recipe, "decompose", 3, model, teacher, x, y, report, [s.name for s in outputs_of(src)])
    if "accuracy" in report:
        ctx.log.info("after factorising %.4f, after fine-tuning %.4f", report["accuracy_before_finetune"],
                     report["accuracy"])
    path = ctx.out_dir / "model_lowrank.pt"
    save_state_dict(model, path)
    size = count_macs(model, example)
    art = derived(src, name=artifact_name("torch", "fp32", lowrank=True), path=str(path), format="torch",
                  precision="fp32", layout=src.layout, lowrank=True, params=size["params"], macs=size["macs"],
                  reference="", extra={**src.extra, "decomposed": report["plan"], "decomposed_from": src.name})
    check_rebuild(model, art, [t[:8] for t in x], src.extra["arch"], stage="decompose")
    return StageOutput((finalize(art, ("torch", "tensorly")),), report)


STAGE = Stage("decompose", "low-rank factorised model (Tucker-2 convolutions, SVD 1x1 and linear), fine-tuned with "
              "distillation (off unless decompose.enabled)", ("train",), settings, run, tools=("torch", "tensorly"),
              trains=True, schema=SCHEMA, skip=skip)

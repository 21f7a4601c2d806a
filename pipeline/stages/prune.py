"""prune: structured pruning (channels removed) of the trained model, then fine-tuning distilled from it."""

from __future__ import annotations

from pipeline import data
from pipeline.artifacts.artifact import artifact_name, derived, finalize
from pipeline.artifacts.model_io import example_inputs
from pipeline.artifacts.tensors import inputs_of, outputs_of
from pipeline.compression.finetune import finetune_schema, recover, training_tensors
from pipeline.compression.macs import count_macs
from pipeline.compression.pruning import IMPORTANCES, PruneError, PruneSettings, prune
from pipeline.core.errors import ConfigError, UserError
from pipeline.core.schema import Field, non_negative, positive
from pipeline.models.checkpoint import check_rebuild, load_model, save_state_dict
from pipeline.models.recipe_model import skip_reason
from pipeline.recipe.config import Config
from pipeline.stages.contract import Context, Stage, StageOutput

SCHEMA = {
    "prune": {
        "enabled": Field(bool, False),
        "ratio": Field(float, 0.0, check=lambda v: 0.0 <= v < 1.0, hint="in [0, 1); 0: use macs_factor"),
        "macs_factor": Field(float, 2.0, check=lambda v: v >= 1.0, hint=">= 1"),
        "importance": Field(str, "l2", choices=IMPORTANCES),
        "global_pruning": Field(bool, False),
        "round_to": Field(int, 8, check=non_negative, hint=">= 0 (0: no rounding)"),
        "ignore": Field(list, lambda: ["classifier"]),
        "iterative_steps": Field(int, 1, check=positive, hint="> 0"),
        "max_accuracy_drop": Field(float, 1.0, check=non_negative, hint=">= 0 (points against the fp32 model)"),
        "finetune": finetune_schema(epochs=1.5, lr=0.03, weight=0.7),
    },
}


def settings(recipe: Config, target: Config) -> dict:
    # The accuracy limit is a gate checked by evaluate: changing it must not redo the pruning.
    prune_cfg = {k: v for k, v in recipe.data["prune"].items() if k != "max_accuracy_drop"}
    return {"prune": prune_cfg, "train": recipe.data["train"], "data": data.fingerprint(recipe)}


def prune_settings(cfg: dict) -> PruneSettings:
    return PruneSettings(ratio=cfg["ratio"], macs_factor=cfg["macs_factor"], importance=cfg["importance"],
                         global_pruning=cfg["global_pruning"], round_to=cfg["round_to"], ignore=tuple(cfg["ignore"]),
                         iterative_steps=cfg["iterative_steps"])


def skip(recipe: Config, target: Config) -> str | None:
    reason = skip_reason(recipe, "prune")
    return reason or (None if recipe.data["prune"]["enabled"] else "prune.enabled = false")


def run(ctx: Context) -> StageOutput:
    cfg = ctx.recipe.data["prune"]
    reason = skip(ctx.recipe, ctx.target)
    if reason:
        return StageOutput.skip(reason)
    decomposed = [a for a in ctx.inputs["decompose"].artifacts if a.format == "torch"]
    src = decomposed[0] if decomposed else ctx.inputs["train"].artifact("torch-fp32")
    teacher = load_model(ctx.inputs["train"].artifact("torch-fp32"))  # distilled from the uncompressed model
    model = load_model(src)
    x, y = training_tensors(ctx.recipe)
    example = example_inputs(inputs_of(src))
    try:
        model, report = prune(model, example, prune_settings(cfg),
                              batches=lambda: iter([([t[:256] for t in x], y[:256])]), check=[t[:8] for t in x])
    except KeyError as exc:
        raise ConfigError(ctx.recipe.path, "prune.ignore", str(exc.args[0])) from None
    except PruneError as exc:
        raise UserError(f"{ctx.recipe.path.name}: prune: {src.extra['arch']}: {exc}") from None
    if not report["reached"]:
        ctx.log.warning("pruning stopped at %.2fx fewer MACs, short of prune.macs_factor = %.2f: the layers left to "
                        "prune are at their limit (prune.ignore, round_to)", report["macs_reduction"],
                        cfg["macs_factor"])
    for left in report["left_unpruned"]:
        ctx.log.warning("left unpruned: %s (%d layers: %s%s)", left["reason"], len(left["layers"]),
                        ", ".join(left["layers"][:4]), ", ..." if len(left["layers"]) > 4 else "")
    ctx.log.info("pruned %s: MACs %d -> %d (%.2fx fewer), params %d -> %d", src.name, report["before"]["macs"],
                 report["after"]["macs"], report["macs_reduction"], report["before"]["params"],
                 report["after"]["params"])
    distilled = recover(ctx.recipe, "prune", 1, model, teacher, x, y, report, [s.name for s in outputs_of(src)])
    if "accuracy" in report:
        ctx.log.info("after pruning %.4f, after fine-tuning%s %.4f", report["accuracy_before_finetune"],
                     " with distillation" if distilled else "", report["accuracy"])
    path = ctx.out_dir / "model_pruned.pt"
    save_state_dict(model, path)  # on torchrun ranks other than 0 this folder is scratch (see runner)
    size = count_macs(model, example)
    art = derived(src, name=artifact_name("torch", "fp32", pruned=True, lowrank=src.lowrank), path=str(path),
                  format="torch",
                  precision="fp32", layout=src.layout, pruned=True, params=size["params"], macs=size["macs"],
                  reference="", extra={**src.extra, "pruned": True, "pruned_from": src.name})
    check_rebuild(model, art, [t[:8] for t in x], src.extra["arch"])
    return StageOutput((finalize(art, ("torch", "torch-pruning")),), report)


STAGE = Stage("prune", "structurally pruned model, fine-tuned with distillation from the unpruned one",
              ("train", "decompose"),
              settings, run, tools=("torch", "torch-pruning"), trains=True, schema=SCHEMA, skip=skip)

"""train: the fp32 PyTorch model, trained from the recipe or loaded (user state_dict or packaged weights).

Whatever the model's source (a bundled architecture, the user's own builder, a package), the artifact records its
model spec, so any later stage or fresh process rebuilds the same network. A recipe whose model is an ONNX or
TFLite file has no PyTorch model: this stage is skipped and says so.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline import data
from pipeline.artifacts.artifact import Artifact, finalize
from pipeline.artifacts.model_io import OutputError, example_inputs, output_specs, outputs
from pipeline.compression.macs import count_macs
from pipeline.core.errors import UserError
from pipeline.core.schema import Field, fraction, non_negative, positive, seed
from pipeline.metrics import task
from pipeline.models import sources
from pipeline.models.checkpoint import load_state_dict, save_state_dict
from pipeline.models.recipe_model import model_key, skip_reason
from pipeline.recipe.config import Config, weights_path
from pipeline.stages.contract import Context, Stage, StageOutput
from pipeline.training.loop import classification, predict, train
from pipeline.training.recipe_data import torch_inputs, train_settings

SCHEMA = {
    "train": {
        "epochs": Field(float, 3.0, check=lambda v: 0 < v <= 10_000, hint="> 0 and <= 10000"),
        "batch_size": Field(int, 128, check=positive, hint="> 0"),
        "lr": Field(float, 0.08, check=positive, hint="> 0"),
        "weight_decay": Field(float, 4e-5, check=non_negative, hint=">= 0"),
        "label_smoothing": Field(float, 0.0, check=fraction, hint="between 0 and 1"),
        "schedule": Field(str, "onecycle", choices=("onecycle", "cosine", "constant")),
        "flip": Field(bool, True),
        "seed": Field(int, 0, check=seed, hint="0 to 2^32 - 1"),
        "max_train_samples": Field(int, 0, check=non_negative, hint=">= 0 (0: all)"),
    },
}


def settings(recipe: Config, target: Config) -> dict:
    s = {"model": model_key(recipe), "weights": recipe.data["weights"], "data": data.fingerprint(recipe)}
    if recipe.data["weights"]["source"] == "train":
        s["train"] = recipe.data["train"]
    elif recipe.data["weights"]["source"] == "state_dict":
        from pipeline.artifacts.artifact import sha256_file

        s["weights_sha256"] = sha256_file(weights_path(recipe))
    return s


def check_fits_data(model: torch.nn.Module, recipe: Config, batch: list[torch.Tensor],
                    targets: np.ndarray | None) -> None:
    """Fail in one line, before any training, when the model cannot take real samples of the dataset, returns
    something other than tensors, or gives a first output that does not fit the targets (probed with a real batch:
    strides and values as training will see them)."""
    what = sources.describe(recipe.data["model_spec"])
    where = f"{recipe.path.name}: model"
    shapes = ", ".join(str(list(t.shape)) for t in batch)
    try:
        with torch.no_grad():
            names, outs = outputs(model.eval(), batch)
    except OutputError as exc:
        raise UserError(f"{where}: {what}: {exc}") from None
    except Exception as exc:  # any layer may reject the shape
        given = "input" if len(batch) == 1 else f"{len(batch)} inputs"
        by = "[input]" if data.is_pictures(recipe) else "the data's arrays"
        raise UserError(f"{where}: {what} cannot take the dataset's {given} {shapes} (set by {by}): "
                        f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}") from None
    first = outs[0]
    gives = "outputs" if len(outs) == 1 else f"a first output {names[0]!r}"
    then = "" if len(outs) == 1 else " first"
    if targets is None:
        return
    if classification(targets):
        classes = len(data.label_names(recipe))
        if first.ndim != 2 or first.shape[1] != classes:
            raise UserError(f"{where}: {what} gives {gives} of shape {list(first.shape)} but the dataset "
                            f"{recipe.data['data']['dataset']!r} has {classes} classes; make it return "
                            f"[batch, {classes}]{then} (e.g. num_classes = {classes} in [model.settings])")
    elif first.numel() != targets[: len(first)].size:
        raise UserError(f"{where}: {what} gives {gives} of shape {list(first.shape)} but the targets have shape "
                        f"{[len(first), *targets.shape[1:]]}; return the regressed values{then}")


def check_finite(logits: np.ndarray, recipe: Config, how: str) -> None:
    if not np.isfinite(logits).all():
        tip = "training diverged: lower train.lr" if how == "train" else "check the weights"
        raise UserError(f"{recipe.path.name}: the {how} model's outputs are NaN or infinite ({tip})")


def skip(recipe: Config, target: Config) -> str | None:
    return skip_reason(recipe, "train")


def run(ctx: Context) -> StageOutput:
    recipe = ctx.recipe
    reason = skip(recipe, ctx.target)
    if reason:
        return StageOutput.skip(reason)
    spec_model = recipe.data["model_spec"]
    torch.manual_seed(recipe.data["train"]["seed"])
    source = recipe.data["weights"]["source"]
    model = sources.build(spec_model, pretrained=source == "pretrained")
    summary: dict = {"source": source, "model": sources.describe(spec_model)}
    evals = data.eval_split(recipe)
    ex = torch_inputs(recipe, evals)
    if source == "train":
        split = data.train_split(recipe)
        x = torch_inputs(recipe, split)
        y = torch.from_numpy(np.asarray(split.labels))
        check_fits_data(model, recipe, [t[:2] for t in x], split.labels)
        summary["data"] = {"train": len(split), "eval": len(evals),
                           "skipped": list(split.skipped + evals.skipped)[:20],
                           "skipped_count": len(split.skipped) + len(evals.skipped),
                           "read_seconds": round(split.read_seconds + evals.read_seconds, 2)}
        summary["warnings"] = data.caveats.training(recipe, len(split))
        summary.update(train(model, x, y, train_settings(recipe, recipe.data["train"]), desc="train"))
    else:
        if source == "state_dict":
            load_state_dict(model, weights_path(recipe))
        check_fits_data(model, recipe, [t[:2] for t in ex], evals.labels)
    model.eval()
    outs = predict(model, ex)
    for out in outs:
        check_finite(out, recipe, "train" if source == "train" else "loaded")
    in_specs = data.input_tensors(recipe)
    examples = example_inputs(in_specs)
    out_specs = output_specs(model, examples)
    if evals.labels is not None:
        metric = task.resolved(recipe.data["metric_spec"], evals.labels)
        value = task.score(metric, outs, [s.name for s in out_specs], evals.labels)
        summary["metric"] = {"name": task.label(metric), "value": value}
        summary["accuracy"] = value  # the task metric's value (top-1 accuracy for classifiers)
    summary["params"] = int(sum(p.numel() for p in model.parameters()))
    np.save(ctx.out_dir / "eval_logits.npy", outs[0])
    path = ctx.out_dir / "model.pt"
    save_state_dict(model, path)
    size = count_macs(model, examples)
    pictures = data.is_pictures(recipe)
    art = Artifact(
        name="torch-fp32", path=str(path), format="torch", precision="fp32", layout="NCHW" if pictures else "",
        input_shape=in_specs[0].shape, params=size["params"], macs=size["macs"],
        inputs=in_specs, outputs=out_specs,
        extra={"arch": sources.describe(spec_model), "model": spec_model,
               "input": data.input_spec(recipe).to_dict() if pictures else dict(recipe.data["input"]),
               "labels": list(data.label_names(recipe))},
    )
    ctx.log.info("model %s: %d parameters, %d input(s), %d output(s)%s", art.extra["arch"], summary["params"],
                 len(in_specs), len(out_specs),
                 f", test {summary['metric']['name']} {summary['accuracy']:.4f}" if "accuracy" in summary else "")
    return StageOutput((finalize(art, ("torch",)),), summary)


STAGE = Stage("train", "the fp32 PyTorch model (trained or loaded)", (), settings, run, tools=("torch", "numpy"),
              trains=True, schema=SCHEMA, skip=skip)

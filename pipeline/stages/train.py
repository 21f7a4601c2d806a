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
from pipeline.compression.macs import count_macs
from pipeline.core.errors import UserError
from pipeline.core.schema import Field, fraction, non_negative, positive, seed
from pipeline.models import sources
from pipeline.models.checkpoint import load_state_dict, save_state_dict
from pipeline.models.recipe_model import model_key, skip_reason
from pipeline.recipe.config import Config, weights_path
from pipeline.stages.contract import Context, Stage, StageOutput
from pipeline.training.loop import TrainSettings, predict_logits, train

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


def check_fits_data(model: torch.nn.Module, recipe: Config, batch: torch.Tensor) -> None:
    """Fail in one line, before any training, when the model cannot take real pictures of the dataset or gives the
    wrong number of outputs (probed with a real batch: strides and values as training will see them)."""
    classes = len(data.label_names(recipe))
    what = sources.describe(recipe.data["model_spec"])
    where = f"{recipe.path.name}: model"
    try:
        with torch.no_grad():
            out = model.eval()(batch)
    except Exception as exc:  # any layer may reject the shape
        raise UserError(f"{where}: {what} cannot take the dataset's input {list(batch.shape)} (set by [input]): "
                        f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}") from None
    if not isinstance(out, torch.Tensor):
        raise UserError(f"{where}: {what} returns {type(out).__name__}; the pipeline takes models that return one "
                        "tensor of class scores")
    if out.ndim != 2 or out.shape[1] != classes:
        raise UserError(f"{where}: {what} gives outputs of shape {list(out.shape)} but the dataset "
                        f"{recipe.data['data']['dataset']!r} has {classes} classes; make it return "
                        f"[batch, {classes}] (e.g. num_classes = {classes} in [model.settings])")


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
    spec = data.input_spec(recipe)
    summary: dict = {"source": source, "model": sources.describe(spec_model)}
    evals = data.eval_split(recipe)
    ex = torch.from_numpy(data.to_tensor(evals.images, spec))
    if source == "train":
        split = data.train_split(recipe)
        x = torch.from_numpy(data.to_tensor(split.images, spec))
        y = torch.from_numpy(split.labels)
        check_fits_data(model, recipe, x[:2])
        summary["data"] = {"train": len(x), "eval": len(ex), "skipped": list(split.skipped + evals.skipped)[:20],
                           "skipped_count": len(split.skipped) + len(evals.skipped),
                           "read_seconds": round(split.read_seconds + evals.read_seconds, 2)}
        summary["warnings"] = data.caveats.training(recipe, len(x))
        summary.update(train(model, x, y, TrainSettings(**recipe.data["train"]), desc="train"))
    else:
        if source == "state_dict":
            load_state_dict(model, weights_path(recipe))
        check_fits_data(model, recipe, ex[:2])
    model.eval()
    logits = predict_logits(model, ex)
    check_finite(logits, recipe, "train" if source == "train" else "loaded")
    if evals.labels is not None:
        summary["accuracy"] = float((logits.argmax(1) == evals.labels).mean())
    summary["params"] = int(sum(p.numel() for p in model.parameters()))
    np.save(ctx.out_dir / "eval_logits.npy", logits)
    path = ctx.out_dir / "model.pt"
    save_state_dict(model, path)
    example = torch.zeros(1, spec.channels, spec.height, spec.width)
    size = count_macs(model, example)
    art = Artifact(
        name="torch-fp32", path=str(path), format="torch", precision="fp32", layout="NCHW",
        input_shape=tuple(example.shape), params=size["params"], macs=size["macs"],
        extra={"arch": sources.describe(spec_model), "model": spec_model, "input": spec.to_dict(),
               "labels": list(data.label_names(recipe))},
    )
    ctx.log.info("model %s: %d parameters%s", art.extra["arch"], summary["params"],
                 f", test accuracy {summary['accuracy']:.4f}" if "accuracy" in summary else "")
    return StageOutput((finalize(art, ("torch",)),), summary)


STAGE = Stage("train", "the fp32 PyTorch model (trained or loaded)", (), settings, run, tools=("torch", "numpy"),
              trains=True, schema=SCHEMA, skip=skip)

"""train: the fp32 PyTorch model, trained from the recipe or loaded (user state_dict or packaged weights)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from pipeline import data
from pipeline.artifact import Artifact, finalize
from pipeline.compression.pruning import count
from pipeline.config import Config, weights_path
from pipeline.errors import UserError
from pipeline.models import build
from pipeline.models.checkpoint import load_state_dict, save_state_dict
from pipeline.stage import Context, Stage, StageOutput
from pipeline.training import TrainSettings, predict_logits, train


def settings(recipe: Config, target: Config) -> dict:
    s = {"model": recipe.data["model"], "weights": recipe.data["weights"], "data": recipe.data["data"]["dataset"]}
    if recipe.data["weights"]["source"] == "train":
        s["train"] = recipe.data["train"]
    elif recipe.data["weights"]["source"] == "state_dict":
        from pipeline.artifact import sha256_file

        s["weights_sha256"] = sha256_file(weights_path(recipe))
    return s


def _build(recipe: Config) -> torch.nn.Module:
    model_cfg = recipe.data["model"]
    kwargs = copy.deepcopy(model_cfg["settings"])
    if model_cfg["arch"] == "efficientnet_lite0":
        kwargs["pretrained"] = recipe.data["weights"]["source"] == "pretrained"
    return build(model_cfg["arch"], **kwargs)


def check_fits_data(model: torch.nn.Module, recipe: Config, spec: data.InputSpec) -> None:
    """Fail in one line, before any training, when the model cannot take the dataset's pictures or classes."""
    shape = (1, spec.channels, spec.height, spec.width)
    classes = len(data.label_names(recipe))
    where = f"{recipe.path.name}: model.settings"
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(shape))
    except Exception as exc:  # any layer may reject the shape
        raise UserError(f"{where}: arch {recipe.data['model']['arch']!r} cannot take the dataset's input "
                        f"{list(shape)}: {str(exc).splitlines()[0][:160]}") from None
    if tuple(out.shape) != (1, classes):
        raise UserError(f"{where}: the model gives {list(out.shape)[1:]} outputs per picture but the dataset "
                        f"{recipe.data['data']['dataset']!r} has {classes} classes; set num_classes = {classes}")


def run(ctx: Context) -> StageOutput:
    recipe = ctx.recipe
    torch.manual_seed(recipe.data["train"]["seed"])
    model = _build(recipe)
    spec = data.input_spec(recipe)
    check_fits_data(model, recipe, spec)
    source = recipe.data["weights"]["source"]
    summary: dict = {"source": source}
    if source == "train":
        split = data.train_split(recipe)
        x = torch.from_numpy(data.to_tensor(split.images, spec))
        y = torch.from_numpy(split.labels)
        summary.update(train(model, x, y, TrainSettings(**recipe.data["train"]), desc="train"))
    elif source == "state_dict":
        load_state_dict(model, weights_path(recipe))
    model.eval()
    evals = data.eval_split(recipe)
    logits = predict_logits(model, torch.from_numpy(data.to_tensor(evals.images, spec)))
    if evals.labels is not None:
        summary["accuracy"] = float((logits.argmax(1) == evals.labels).mean())
    summary["params"] = int(sum(p.numel() for p in model.parameters()))
    np.save(ctx.out_dir / "eval_logits.npy", logits)
    path = ctx.out_dir / "model.pt"
    save_state_dict(model, path)
    settings_for_rebuild = copy.deepcopy(recipe.data["model"]["settings"])
    if recipe.data["model"]["arch"] == "efficientnet_lite0":
        settings_for_rebuild["pretrained"] = False  # the state_dict carries the weights
    example = torch.zeros(1, spec.channels, spec.height, spec.width)
    size = count(model, example)
    art = Artifact(
        name="torch-fp32", path=str(path), format="torch", precision="fp32", layout="NCHW",
        input_shape=tuple(example.shape), params=size["params"], macs=size["macs"],
        extra={"arch": recipe.data["model"]["arch"], "settings": settings_for_rebuild, "input": spec.to_dict(),
               "labels": list(data.label_names(recipe))},
    )
    ctx.log.info("model %s: %d parameters%s", art.extra["arch"], summary["params"],
                 f", test accuracy {summary['accuracy']:.4f}" if "accuracy" in summary else "")
    return StageOutput((finalize(art, ("torch",)),), summary)


STAGE = Stage("train", "the fp32 PyTorch model (trained or loaded)", (), settings, run, tools=("torch", "numpy"),
              trains=True)

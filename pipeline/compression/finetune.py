"""What the compression stages (decompose, prune) share: the training tensors, and the fine-tune that recovers a
compressed model by distillation from the uncompressed one, with accuracy measured before and after it."""

from __future__ import annotations

import numpy as np
import torch

from pipeline import data
from pipeline.core.schema import Field, fraction, positive
from pipeline.metrics import task
from pipeline.recipe.config import Config
from pipeline.training.loop import Distillation, TrainSettings, predict, train
from pipeline.training.recipe_data import torch_inputs, train_settings


def finetune_schema(epochs: float, lr: float, weight: float) -> dict:
    """The `finetune` sub-table of a compression stage (pruning, decomposition) or QAT: a short training run that
    can learn from the fp32 model, with these defaults."""
    return {
        "epochs": Field(float, epochs, check=lambda v: 0 <= v <= 10_000, hint=">= 0 and <= 10000"),
        "lr": Field(float, lr, check=positive, hint="> 0"),
        "distill": Field(bool, True),
        "distill_temperature": Field(float, 4.0, check=positive, hint="> 0"),
        "distill_weight": Field(float, weight, check=fraction, hint="between 0 and 1"),
    }


def training_tensors(recipe: Config) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The training split as model inputs (one tensor per input) and targets."""
    split = data.train_split(recipe)
    return torch_inputs(recipe, split), torch.from_numpy(np.asarray(split.labels))


def finetune_settings(recipe: Config, table: str, seed_offset: int) -> TrainSettings:
    """`table`.finetune over the recipe's training settings; each stage its own seed, so they do not repeat batches."""
    ft, base = recipe.data[table]["finetune"], recipe.data["train"]
    return train_settings(recipe, {"epochs": ft["epochs"], "batch_size": base["batch_size"], "lr": ft["lr"],
                                   "weight_decay": base["weight_decay"], "schedule": "cosine", "flip": base["flip"],
                                   "seed": base["seed"] + seed_offset,
                                   "max_train_samples": base["max_train_samples"]})


def score(recipe: Config, model: torch.nn.Module, x: list[torch.Tensor], labels, names: list[str]) -> float:
    """The recipe's task metric of `model` on evaluation inputs `x`."""
    return task.score(task.resolved(recipe.data["metric_spec"], labels), predict(model, x), names, labels)


def recover(recipe: Config, table: str, seed_offset: int, model: torch.nn.Module, teacher: torch.nn.Module,
            x: list[torch.Tensor], y: torch.Tensor, report: dict, names: list[str]) -> bool:
    """Fine-tune `model` in place (distilled from `teacher` when `table`.finetune.distill); the task metric on the
    evaluation split before and after goes into `report` when that split has labels. Returns whether it distilled."""
    evals = data.eval_split(recipe)
    ex = torch_inputs(recipe, evals)
    labelled = evals.labels is not None
    if labelled:
        report["accuracy_before_finetune"] = score(recipe, model, ex, evals.labels, names)
    ft = recipe.data[table]["finetune"]
    distill = Distillation(teacher, ft["distill_temperature"], ft["distill_weight"]) if ft["distill"] else None
    if ft["epochs"] > 0:
        report["finetune"] = train(model, x, y, finetune_settings(recipe, table, seed_offset), distill=distill,
                                   desc="finetune")
    if labelled:
        report["accuracy"] = score(recipe, model, ex, evals.labels, names)
    return distill is not None

"""A recipe's data as the training loop takes it: input tensors and the loop's settings."""

from __future__ import annotations

import numpy as np
import torch

from pipeline import data
from pipeline.recipe.config import Config
from pipeline.training.loop import TrainSettings


def torch_inputs(recipe: Config, split: data.Split) -> list[torch.Tensor]:
    """A split's model inputs as tensors (sharing the arrays' memory where it can; a read-only memory-mapped array is
    read into memory once, as training indexes every sample anyway)."""
    return [torch.from_numpy(_writable(np.ascontiguousarray(x))) for x in data.model_inputs(recipe, split)]


def _writable(x: np.ndarray) -> np.ndarray:
    return x if x.flags.writeable else np.array(x)


def train_settings(recipe: Config, table: dict) -> TrainSettings:
    """A [train]-like table as the loop's settings; flips are for pictures only (not for spectrograms, series)."""
    return TrainSettings(**{**table, "flip": bool(table.get("flip", True)) and data.is_pictures(recipe)})

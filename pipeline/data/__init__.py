"""The datasets a recipe can name, behind one interface: input spec, training split, evaluation split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import Config
from pipeline.preprocess import InputSpec, normalise_batch


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, N x H x W (grey) or N x H x W x C, already at the model's input size
    labels: np.ndarray | None  # int64 N, or None for unlabelled sets
    names: tuple[str, ...] = ()  # per-sample names where the set has them


def input_spec(recipe: Config) -> InputSpec:
    """What the recipe's model takes as input."""
    dataset = recipe.data["data"]["dataset"]
    if dataset == "fashion-mnist":
        from pipeline.data import fashion_mnist as fm

        return InputSpec(28, 28, 1, (fm.MEAN,), (fm.STD,))
    from pipeline.models.efficientnet_lite import MEAN, STD

    return InputSpec(224, 224, 3, MEAN, STD)


def label_names(recipe: Config) -> tuple[str, ...]:
    if recipe.data["data"]["dataset"] == "fashion-mnist":
        from pipeline.data.fashion_mnist import LABELS

        return LABELS
    return tuple(f"imagenet-{i}" for i in range(1000))


def train_split(recipe: Config) -> Split:
    """The labelled training images; only Fashion-MNIST has them (recipes are checked for this when loaded)."""
    if recipe.data["data"]["dataset"] != "fashion-mnist":
        raise ValueError(f"dataset {recipe.data['data']['dataset']!r} has no training split")
    from pipeline.data import fashion_mnist as fm

    images, labels = fm.load("train")
    return Split(images, labels)


def eval_split(recipe: Config, samples: int = 0) -> Split:
    """The evaluation set (the whole test split unless `samples` or the recipe's eval_samples limit it)."""
    limit = samples or recipe.data["data"]["eval_samples"]
    if recipe.data["data"]["dataset"] == "fashion-mnist":
        from pipeline.data import fashion_mnist as fm

        images, labels = fm.load("test")
        split = Split(images, labels)
    else:
        from pipeline.data import photos

        images, names = photos.load(input_spec(recipe))
        split = Split(images, None, names)
    if limit:
        split = Split(split.images[:limit], None if split.labels is None else split.labels[:limit],
                      split.names[:limit])
    return split


def calibration_images(recipe: Config) -> np.ndarray:
    """uint8 images from the training distribution for int8 calibration (a fixed, evenly spread subset)."""
    n = recipe.data["data"]["calibration_samples"]
    if recipe.data["data"]["dataset"] == "fashion-mnist":
        images = train_split(recipe).images
        step = max(1, len(images) // n)
        return images[::step][:n]
    return eval_split(recipe).images


def to_tensor(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 images at model size -> float32 N x C x H x W, normalised (the reference preprocessing)."""
    return normalise_batch(images, spec)

"""The datasets a recipe can name: one contract (pipeline/data/source.py), one file per kind, registered here.

Everything downstream asks this module for pictures at the model's input size and never looks at the dataset's
name: the input spec comes from the recipe's resolved [input] table (pipeline/recipe/inputs.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from pipeline.artifacts.preprocess import InputSpec, normalise_batch, resize_bilinear, to_channels
from pipeline.artifacts.tensors import TensorSpec
from pipeline.data import arrays, calibration_photos, caveats, fashion_mnist, image_folder, mnist, photos, python_loader
from pipeline.data.source import DataSource, Split

if TYPE_CHECKING:
    from pipeline.recipe.config import Config

__all__ = ["DATASETS", "InputSpec", "Split", "source", "input_spec", "label_names", "train_split", "eval_split",
           "calibration_images", "calibration_inputs", "to_tensor", "fingerprint", "has_train", "is_pictures",
           "input_tensors", "model_inputs", "caveats"]

SOURCES: dict[str, DataSource] = {s.name: s for s in (fashion_mnist.SOURCE, mnist.SOURCE, photos.SOURCE,
                                                      image_folder.SOURCE, arrays.SOURCE, python_loader.SOURCE)}
DATASETS = tuple(SOURCES)


def source(recipe: Config) -> DataSource:
    return SOURCES[recipe.data["data"]["dataset"]]


def is_pictures(recipe: Config) -> bool:
    """True when the model takes one picture (the data are pictures, preprocessed by the reference maths)."""
    return "tensors" not in recipe.data["input"]


def input_spec(recipe: Config) -> InputSpec:
    """What the recipe's model takes as input (resolved once, when the recipe was loaded); pictures only."""
    return InputSpec.from_dict(recipe.data["input"])


def input_tensors(recipe: Config, batch: int = 1) -> tuple[TensorSpec, ...]:
    """The model's inputs as tensor specs with a leading batch of `batch`: one NCHW float32 picture, or the tensors
    the data holds (the resolved [input] table's `tensors`, one per input, shapes without the batch)."""
    table = recipe.data["input"]
    if "tensors" in table:
        return tuple(TensorSpec(t["name"], (batch, *t["shape"]), t.get("dtype", "float32"))
                     for t in table["tensors"])
    return (TensorSpec("input", (batch, table["channels"], table["height"], table["width"]), "float32", "NCHW"),)


def label_names(recipe: Config) -> tuple[str, ...]:
    return source(recipe).labels(recipe.data["data"])


def has_train(recipe: Config) -> bool:
    return source(recipe).has_train


def fingerprint(recipe: Config) -> dict:
    """Everything about the data that changes a stage's result: the table, the input spec, the folder's contents."""
    table = recipe.data["data"]
    return {"data": table, "input": recipe.data["input"], **source(recipe).fingerprint(table)}


def fit_to_spec(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 pictures at the spec's size and channels (the reference conversion and resize); unchanged if they are."""
    grey = images.ndim == 3
    channels = 1 if grey else images.shape[3]
    if images.shape[1:3] == (spec.height, spec.width) and channels == spec.channels:
        return images
    out = np.empty((len(images), spec.height, spec.width) + (() if spec.channels == 1 else (spec.channels,)),
                   np.uint8)
    for i, img in enumerate(images):
        pixels = resize_bilinear(to_channels(img, spec.channels), spec.height, spec.width)
        pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        out[i] = pixels[:, :, 0] if spec.channels == 1 else pixels
    return out


def _split(recipe: Config, which: str) -> Split:
    split = source(recipe).load(recipe.data["data"], which, recipe.data["input"])
    if split.inputs:
        return split
    images = fit_to_spec(split.images, input_spec(recipe))
    return Split(images, split.labels, split.names, split.skipped, split.read_seconds)


def train_split(recipe: Config) -> Split:
    """The labelled training pictures (recipes whose data has none are refused when loaded)."""
    if not has_train(recipe):
        raise ValueError(f"dataset {recipe.data['data']['dataset']!r} has no training split")
    return _split(recipe, "train")


def eval_split(recipe: Config, samples: int = 0) -> Split:
    """The evaluation set (the whole test split unless `samples` or the recipe's eval_samples limit it)."""
    limit = samples or recipe.data["data"]["eval_samples"]
    return _split(recipe, "test").head(limit)


def model_inputs(recipe: Config, split: Split) -> list[np.ndarray]:
    """A split's samples as the model's inputs in reference form, one array per input (pictures: normalised NCHW)."""
    if split.inputs:
        return list(split.inputs)
    return [to_tensor(split.images, input_spec(recipe))]


def calibration_inputs(recipe: Config) -> list[np.ndarray]:
    """Calibration samples from the training split (a fixed, evenly spread subset), as model inputs."""
    n = recipe.data["data"]["calibration_samples"]
    if is_pictures(recipe):
        return [to_tensor(calibration_images(recipe), input_spec(recipe))]
    split = train_split(recipe) if has_train(recipe) else eval_split(recipe)
    step = max(1, len(split) // n)
    return [np.asarray(a[::step][:n]) for a in split.inputs]


def calibration_images(recipe: Config) -> np.ndarray:
    """uint8 pictures from the training distribution for int8 calibration (a fixed, evenly spread subset); with no
    training split, the photographs kept apart from the evaluation pictures (calibration_photos), else those."""
    n = recipe.data["data"]["calibration_samples"]
    if has_train(recipe):
        images = train_split(recipe).images
        step = max(1, len(images) // n)
        return np.asarray(images[::step][:n])
    spec = input_spec(recipe)
    apart = calibration_photos.load(spec.height, spec.width, spec.channels, n)  # None when not installed
    if apart is not None:
        return apart
    logging.getLogger("pipeline.data").warning("int8: %s", calibration_photos.describe(False, n))
    return np.asarray(eval_split(recipe).images[:n])


def to_tensor(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 pictures at model size -> float32 N x C x H x W, normalised, C-contiguous (the reference maths)."""
    return normalise_batch(images, spec)

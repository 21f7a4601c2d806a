"""The input spec of a recipe, derived in one place: what the model takes (size, channels, normalisation).

Each value comes from the first of: the recipe's [input] table, the model file's input shape (onnx/tflite sources),
the dataset's known values (Fashion-MNIST: 28x28 grey, its mean and std), and the plain default (mean 0, std 1:
pixels scaled to 0..1). ``range = "0-255"`` means mean and std are written in pixel units, for models that take
raw 0..255 input; they are stored on the 0..1 scale like every other, so the one formula
``(v / 255 - mean) / std`` serves every consumer (evaluation, calibration, release metadata, the Android app).

Example::

    >>> resolve({"height": 0, "width": 0, "channels": 0, "mean": [127.0], "std": [128.0], "range": "0-255"},
    ...         {"height": 224, "width": 224, "channels": 3}, None, "r.toml")["mean"]
    [0.4980392156862745, 0.4980392156862745, 0.4980392156862745]
"""

from __future__ import annotations

import logging

from pipeline.core.errors import ConfigError

SIZE_LIMIT = 4096
log = logging.getLogger("pipeline.recipe.inputs")
_TOLD: set[str] = set()  # size notes already logged in this process (a recipe is often loaded more than once)


def _tell(dataset: dict) -> None:
    """Log how the dataset chose the input size, once per process."""
    note = dataset.get("size_note")
    if note and note not in _TOLD:
        _TOLD.add(note)
        log.info("%s", note)


def _tensors(table: dict, dataset: dict, path: object) -> dict:
    """Data that are not pictures give the model's inputs themselves: picture keys set in [input] are refused."""
    for key in ("height", "width", "channels", "mean", "std"):
        if table[key]:
            raise ConfigError(path, f"input.{key}", "is for pictures; this data set gives the model's inputs as "
                              "arrays (names, shapes and dtypes come from the data): remove it")
    if table["range"] != "0-1":
        raise ConfigError(path, "input.range", "is for pictures; this data set's arrays are fed as they are")
    return {"tensors": [dict(t) for t in dataset["tensors"]], "origin": {"tensors": "dataset"}}


def resolve(table: dict, dataset: dict, model_file: tuple[int, int, int] | None, path: object) -> dict:
    """The full input table from the recipe's [input] (0 / [] meaning: not set), the dataset's defaults and the
    model file's (channels, height, width). Data that are not pictures (`tensors` in the dataset's defaults: one
    {name, shape per sample, dtype} per model input) resolve to {"tensors": [...]}."""
    if "tensors" in dataset:
        return _tensors(table, dataset, path)
    out: dict = {}
    from_file = dict(zip(("channels", "height", "width"), model_file, strict=True)) if model_file else {}
    origin = {}
    for key in ("height", "width", "channels"):
        if table[key]:
            out[key], origin[key] = table[key], "recipe"
            if key in from_file and from_file[key] != table[key]:
                raise ConfigError(path, f"input.{key}", f"{table[key]} but the model file takes {from_file[key]}")
        elif key in from_file:
            out[key], origin[key] = from_file[key], "model file"
        elif key in dataset:
            out[key], origin[key] = dataset[key], "dataset"
        else:
            raise ConfigError(path, f"input.{key}", "not known from the model or the data; set it in [input]")
    if "dataset" in (origin["height"], origin["width"]):
        _tell(dataset)
    if out["channels"] not in (1, 3):
        raise ConfigError(path, "input.channels", f"{out['channels']} is not allowed (must be 1 or 3)")
    for key in ("height", "width"):
        if not 1 <= out[key] <= SIZE_LIMIT:
            raise ConfigError(path, f"input.{key}", f"{out[key]} is not allowed (must be 1 to {SIZE_LIMIT})")
    scale = 255.0 if table["range"] == "0-255" else 1.0
    for key, default in (("mean", 0.0), ("std", 1.0)):
        if table[key]:
            values, origin[key] = [float(v) / scale for v in table[key]], "recipe"
        elif key in dataset and scale == 1.0:
            values, origin[key] = list(dataset[key]), "dataset"
        else:
            values, origin[key] = [default / scale if key == "std" else default], "default"
        if len(values) == 1:
            values = values * out["channels"]
        if len(values) != out["channels"]:
            raise ConfigError(path, f"input.{key}", f"has {len(values)} values for {out['channels']} channels")
        out[key] = values
    if any(s <= 0 for s in out["std"]):
        raise ConfigError(path, "input.std", "every value must be > 0")
    out["range"] = table["range"]
    out["origin"] = origin
    return out

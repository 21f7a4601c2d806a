"""`phone-pipeline init`: a starter recipe for the user's own model and data, inferred and validated by loading it.

    phone-pipeline init --model my_net.py:build --data ./pictures --out my.toml

--model takes what a recipe's [model] can name: `file.py:function` or `package.module:function` (the user's
builder), `geffnet:<arch>`, a bundled architecture, or an .onnx / .tflite file. --data takes a folder of labelled
pictures (one sub-folder per class), a folder of .npy arrays or an .npz archive (dataset = "arrays"), a loader
`file.py:function` (dataset = "python") or a bundled dataset's name. The input spec comes from the model file or the
data: a folder's size from its pictures' sizes, and, for a model trained here, its mean and std measured on its
training pictures, each with a comment saying how (`folder_notes`); arrays give their names, shapes and dtypes. The
class count comes from the class folders or the labels; builder settings that the builder accepts (num_classes,
in_channels / in_chans: a one-input array's first per-sample dimension) are filled in. The [data] comments say how
many pictures each split holds and what falls short of the settings. The file is written atomically and only when it
loads as a valid recipe.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_bytes
from pipeline.core.errors import ConfigError, UserError

BUNDLED_DATA = ("fashion-mnist", "mnist")


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _relative(path: Path, folder: Path) -> str:
    return os.path.relpath(path.resolve(), folder.resolve())


def model_table(model: str, folder: Path) -> dict:
    """The [model] keys for what --model names."""
    from pipeline.models import ARCHITECTURES

    lower = model.lower()
    if lower.endswith(".onnx") or lower.endswith(".tflite"):
        kind = "onnx" if lower.endswith(".onnx") else "tflite"
        return {"source": kind, "path": _relative(Path(model), folder)}
    if model.startswith("geffnet:"):
        return {"source": "package", "package": "geffnet", "arch": model.split(":", 1)[1]}
    if ":" in model:
        target, fn = model.rsplit(":", 1)
        if target.endswith(".py") or "/" in target:
            target = _relative(Path(target), folder)
        return {"source": "python", "entry": f"{target}:{fn}"}
    if model in ARCHITECTURES:
        return {"source": "registry", "arch": model}
    raise UserError(f"--model {model!r}: give file.py:function, package.module:function, geffnet:<arch>, a "
                    f"bundled architecture ({', '.join(sorted(ARCHITECTURES))}) or an .onnx / .tflite file")


def _holds_arrays(path: Path) -> bool:
    """A folder of .npy files (or of train/ and val/ sub-folders of them), or an .npz archive."""
    if path.is_file():
        return path.suffix.lower() == ".npz"
    return path.is_dir() and (any(path.glob("*.npy")) or any((path / "train").glob("*.npy")))


def data_table(data: str, folder: Path) -> dict:
    if data in BUNDLED_DATA:
        return {"dataset": data}
    if data.count(":") == 1 and data.split(":")[0].endswith(".py"):
        target, fn = data.split(":")
        return {"dataset": "python", "entry": f"{_relative(Path(target), folder)}:{fn}"}
    if _holds_arrays(Path(data)):
        return {"dataset": "arrays", "path": _relative(Path(data), folder), "val_fraction": 0.2}
    if not Path(data).is_dir():
        raise UserError(f"--data {data!r}: not a folder of labelled pictures (one sub-folder per class), a folder "
                        "of .npy arrays, an .npz archive, a loader file.py:function, nor one of "
                        f"{', '.join(BUNDLED_DATA)}")
    return {"dataset": "image-folder", "path": _relative(Path(data), folder), "val_fraction": 0.2}


def _builder_settings(table: dict, probe: Path, classes: int, channels: int) -> dict:
    """num_classes and the input channels, under the names the builder takes."""
    from pipeline.models import ARCHITECTURES
    from pipeline.models.sources import python_entry
    from pipeline.models.sources.settings import accepted

    if table["source"] == "package":
        return {"num_classes": classes, "in_chans": channels}
    if table["source"] == "registry":
        names = accepted(ARCHITECTURES[table["arch"]]) or set()
    else:
        spec = python_entry.check({**table, "settings": {}}, probe)
        names = accepted(python_entry.resolve(spec))
        if names is None:
            return {}
    out = {}
    if "num_classes" in names and classes:
        out["num_classes"] = classes
    for name in ("in_channels", "in_chans"):
        if name in names and channels:
            out[name] = channels
    return out


def _channels(spec: dict) -> int:
    """The input channels a builder is told: the picture's, or a one-input array's first per-sample dimension."""
    if "tensors" not in spec:
        return spec["channels"]
    tensors = spec["tensors"]
    return tensors[0]["shape"][0] if len(tensors) == 1 and tensors[0]["shape"] else 0


def folder_notes(table: dict, defaults: dict, spec: dict, measure: bool,
                 calibration: int) -> tuple[dict, dict[str, list[str]]]:
    """For a picture folder: the input spec with mean and std measured on its training pictures (when `measure`),
    and the comment lines saying how the size and the normalisation were chosen and how many pictures each split
    holds, with what that means for calibration and evaluation."""
    from pipeline.data import caveats, image_folder

    notes: dict[str, list[str]] = {"input": [], "data": []}
    if "dataset" in (spec["origin"]["height"], spec["origin"]["width"]) and "size_rule" in defaults:
        notes["input"].append(defaults["size_rule"])
    found = image_folder.normalisation(table, spec) if measure else {}
    if found:
        spec = {**spec, "mean": found["mean"], "std": found["std"],
                "origin": {**spec["origin"], "mean": "measured", "std": "measured"}}
        which = "all of them" if found["pictures"] == found["of"] else f"a seeded sample of {found['of']}"
        notes["input"].append(f"mean and std: measured per channel on {found['pictures']} training pictures "
                              f"({which}) at {spec['height']}x{spec['width']}, on the 0..1 scale")
    else:
        notes["input"].append("mean and std: 0 and 1 (pixels / 255); set them to what the model was trained with")
    sizes = image_folder.split_sizes(table)
    notes["data"].append(f"{sizes['train']} training and {sizes['test']} evaluation pictures")
    if sizes["train"] < calibration:
        notes["data"].append(f"calibration_samples = {calibration} but the training split holds {sizes['train']}: "
                             f"int8 calibration will use {sizes['train']}; add pictures for a faithful int8 model")
    if sizes["test"] < caveats.MIN_EVAL_SAMPLES:
        notes["data"].append(f"only {sizes['test']} evaluation pictures: accuracies will be uncertain by up to "
                             f"+-{100 * caveats.margin(sizes['test']):.0f} points; add pictures or raise val_fraction")
    return spec, notes


def render(name: str, model: dict, settings: dict, data: dict, spec: dict, weights: str | None, origin: str,
           notes: dict[str, list[str]] | None = None) -> str:
    """The recipe's text; `notes` are comment lines under a table's header ({"input": [...], "data": [...]})."""
    notes = notes or {}
    pytorch = model["source"] not in ("onnx", "tflite")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [f"# Written by `phone-pipeline init` on {stamp}. Paths are relative to this file's folder.",
             f"# Run it: phone-pipeline run --recipe {name}.toml", "", "[recipe]", f"name = {_toml(name)}",
             'version = "0.1.0"', f"description = {_toml('starter recipe for ' + origin)}", "", "[model]"]
    lines += [f"{k} = {_toml(v)}" for k, v in model.items()]
    if settings:
        lines += ["", "[model.settings]  # keyword arguments of the builder"]
        lines += [f"{k} = {_toml(v)}" for k, v in settings.items()]
    if "tensors" in spec:
        lines += ["", "# [input]: the model's inputs come from the data's arrays, fed as they are:"]
        lines += [f"#   {t['name']}: {t['dtype']} {t['shape']} per sample" for t in spec["tensors"]]
    else:
        lines += ["", f"[input]  # inferred from {', '.join(sorted(set(spec['origin'].values())))}; "
                  "mean/std on the 0..1 scale (set range = \"0-255\" to write them in pixel units)"]
        lines += [f"# {line}" for line in notes.get("input", [])]
        lines += [f"{k} = {_toml(spec[k])}" for k in ("height", "width", "channels", "mean", "std")]
    lines += ["", "[data]"] + [f"# {line}" for line in notes.get("data", [])]
    lines += [f"{k} = {_toml(v)}" for k, v in data.items()]
    lines += ["eval_samples = 0           # 0: every evaluation sample", "calibration_samples = 200"]
    if pytorch:
        lines += ["", "[weights]"]
        if weights:
            lines += ['source = "state_dict"', f"path = {_toml(weights)}"]
        else:
            lines += ['source = "train"']
            lines += ["", "[train]", "epochs = 3", "batch_size = 64", "lr = 0.05", 'schedule = "onecycle"',
                      "flip = false               # horizontal flips: turn on only if your classes allow them",
                      "seed = 0"]
        lines += ["", "[prune]  # structured pruning recovered by distillation; layers it cannot follow stay as "
                  "they are", "enabled = false", "macs_factor = 2.0", "", "[quantize]", 'methods = ["ptq"]']
    return "\n".join(lines) + "\n"


def write(model: str, data: str, out: Path, weights: str | None = None, force: bool = False) -> Path:
    """Infer, render, validate (by loading) and write the starter recipe; returns its path."""
    from pipeline.data import SOURCES
    from pipeline.engine.recipes import load_recipe
    from pipeline.models import sources
    from pipeline.models.sources import files
    from pipeline.recipe import inputs

    out = out if out.suffix == ".toml" else out.with_suffix(".toml")
    if out.exists() and not force:
        raise UserError(f"{out}: exists; choose another --out or pass --force")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder for --out")
    name = re.sub(r"[^A-Za-z0-9._+-]", "-", out.stem).lstrip(".-_+") or "my-model"
    probe = folder / f".{name}.probe.toml"  # relative paths resolve from the recipe's folder
    mtable = model_table(model, folder)
    dtable = data_table(data, folder)
    full_model = {"source": "registry", "arch": "", "package": "", "entry": "", "path": "", "settings": {},
                  **mtable}
    full_data = {"path": "", "train": "", "val": "", "entry": "", "inputs": [], "val_fraction": 0.2, "split_seed": 0,
                 "eval_samples": 0, "calibration_samples": 200, **dtable}
    if full_data["path"]:
        full_data["path"] = str(folder / full_data["path"])
    source = SOURCES[full_data["dataset"]]
    checked_data = source.check(full_data, probe)
    file_shape = None
    if mtable["source"] in ("onnx", "tflite"):
        abs_model = dict(full_model, path=str(folder / full_model["path"]))
        file_shape = files.channels_and_size(sources.check(abs_model, probe))
    empty = {"height": 0, "width": 0, "channels": 0, "mean": [], "std": [], "range": "0-1"}
    defaults = source.input_defaults(checked_data)
    spec = inputs.resolve(empty, defaults, file_shape, probe)
    notes: dict[str, list[str]] = {}
    if dtable["dataset"] == "arrays":  # the input order, written out (the default is alphabetical)
        dtable["inputs"] = [t["name"] for t in spec["tensors"]]
    if dtable["dataset"] == "image-folder":
        # measured normalisation suits a model trained here; a given model keeps the one it was trained with
        trains = mtable["source"] not in ("onnx", "tflite") and not weights
        spec, notes = folder_notes(checked_data, defaults, spec, trains, full_data["calibration_samples"])
    classes = len(source.labels(checked_data))
    settings = {} if file_shape else _builder_settings(full_model, probe, classes, _channels(spec))
    weights_rel = _relative(Path(weights), folder) if weights else None
    text = render(name, mtable, settings, dtable, spec, weights_rel, f"{model} on {data} ({classes} classes)", notes)
    trial = folder / f".{name}.init-{os.getpid()}.toml"  # validated beside its final place, then renamed
    atomic_write_bytes(trial, text.encode())
    try:
        load_recipe(str(trial))
        os.replace(trial, out)
    except ConfigError as exc:
        raise UserError(f"init: the inferred recipe does not load ({exc.key or 'file'}: {exc.problem}); "
                        f"nothing was written to {out}") from None
    finally:
        trial.unlink(missing_ok=True)
    return out

"""Recipes (model, data, compression settings) and targets (a device and how to reach it): TOML, validated on read."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.models import ARCHITECTURES
from pipeline.schema import Field, validate

PACKAGE_DIR = Path(__file__).resolve().parent
RECIPES_DIR = PACKAGE_DIR / "recipes"
TARGETS_DIR = PACKAGE_DIR.parent / "targets"

ARTIFACT_KINDS = ("onnx-fp32", "tflite-fp32", "tflite-fp16", "tflite-int8", "pte-fp32", "pte-int8")
IMPORTANCES = ("l1", "l2", "taylor", "bn_scale")


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


def _fraction(v: Any) -> bool:
    return 0.0 <= v <= 1.0


def _tolerance(agreement: float, acc_drop: float, max_abs: float) -> dict:
    return {
        "min_top1_agreement": Field(float, agreement, check=_fraction, hint="between 0 and 1"),
        "max_accuracy_drop": Field(float, acc_drop, check=_non_negative, hint=">= 0 (percentage points)"),
        "max_abs_diff": Field(float, max_abs, check=_positive, hint="> 0"),
    }


def _distilled_training(epochs: float, lr: float, weight: float) -> dict:
    """A short training run that can learn from the fp32 model (pruning fine-tune, QAT)."""
    return {
        "epochs": Field(float, epochs, check=_non_negative, hint=">= 0"),
        "lr": Field(float, lr, check=_positive, hint="> 0"),
        "distill": Field(bool, True),
        "distill_temperature": Field(float, 4.0, check=_positive, hint="> 0"),
        "distill_weight": Field(float, weight, check=_fraction, hint="between 0 and 1"),
    }


RECIPE_SCHEMA: dict = {
    "recipe": {
        "name": Field(str, check=lambda v: bool(v.strip()) and "/" not in v, hint="a non-empty name without '/'"),
        "version": Field(str, "0.1.0"),
        "description": Field(str, ""),
    },
    "model": {
        "arch": Field(str, choices=tuple(ARCHITECTURES)),
        "settings": Field(dict, dict, free_table=True),
    },
    "weights": {
        "source": Field(str, "train", choices=("train", "state_dict", "pretrained")),
        "path": Field(str, ""),
    },
    "data": {
        "dataset": Field(str, "fashion-mnist", choices=("fashion-mnist", "photos")),
        "eval_samples": Field(int, 0, check=_non_negative, hint=">= 0 (0: the whole test set)"),
        "calibration_samples": Field(int, 200, check=_positive, hint="> 0"),
    },
    "train": {
        "epochs": Field(float, 3.0, check=_positive, hint="> 0"),
        "batch_size": Field(int, 128, check=_positive, hint="> 0"),
        "lr": Field(float, 0.08, check=_positive, hint="> 0"),
        "weight_decay": Field(float, 4e-5, check=_non_negative, hint=">= 0"),
        "label_smoothing": Field(float, 0.0, check=_fraction, hint="between 0 and 1"),
        "schedule": Field(str, "onecycle", choices=("onecycle", "cosine", "constant")),
        "flip": Field(bool, True),
        "seed": Field(int, 0),
        "max_train_samples": Field(int, 0, check=_non_negative, hint=">= 0 (0: all)"),
    },
    "export": {
        "opset": Field(int, 20, check=lambda v: 17 <= v <= 23, hint="between 17 and 23"),
    },
    "prune": {
        "enabled": Field(bool, False),
        "ratio": Field(float, 0.0, check=lambda v: 0.0 <= v < 1.0, hint="in [0, 1); 0: use macs_factor"),
        "macs_factor": Field(float, 2.0, check=lambda v: v >= 1.0, hint=">= 1"),
        "importance": Field(str, "l2", choices=IMPORTANCES),
        "global_pruning": Field(bool, False),
        "round_to": Field(int, 8, check=_non_negative, hint=">= 0 (0: no rounding)"),
        "ignore": Field(list, lambda: ["classifier"]),
        "iterative_steps": Field(int, 1, check=_positive, hint="> 0"),
        "max_accuracy_drop": Field(float, 1.0, check=_non_negative, hint=">= 0 (points against the fp32 model)"),
        "finetune": _distilled_training(epochs=1.5, lr=0.03, weight=0.7),
    },
    "quantize": {
        "methods": Field(list, list, choices=("ptq", "qat")),
        "max_accuracy_drop": Field(float, 1.0, check=_non_negative, hint=">= 0 (points against the fp32 model)"),
        "qat": _distilled_training(epochs=0.3, lr=0.005, weight=0.5),
    },
    "tolerances": {
        "fp32": _tolerance(0.999, 0.1, 1e-3),
        "fp16": _tolerance(0.995, 0.3, 5e-2),
        # int8 artifacts against their own PyTorch reference (the .pte) or float source (TFLite): a few steps
        "int8": _tolerance(0.97, 1.0, 4.0),
    },
}

TARGET_SCHEMA: dict = {
    "target": {
        "name": Field(str),
        "description": Field(str, ""),
    },
    "device": {
        "kind": Field(str, "host", choices=("host", "adb")),
        "serial": Field(str, ""),
        "abi": Field(str, ""),
        "emulated": Field(bool, False),
        "core_mask": Field(str, ""),
        "threads": Field(int, 1, check=_positive, hint="> 0"),
        "runtimes": Field(list, list),
        "benchmark_binaries": Field(dict, dict, free_table=True),
    },
    "compute": {
        "threads": Field(int, 1, check=_positive, hint="> 0 (torch threads for training and conversion here)"),
    },
    "artifacts": {
        "build": Field(list, lambda: list(ARTIFACT_KINDS), choices=ARTIFACT_KINDS),
    },
    "validation": {
        "samples": Field(int, 0, check=_non_negative, hint=">= 0 (0: whole test set)"),
        # on_device gate: the device's top-1 agreement with the host's outputs of the same artifact
        "min_host_agreement": Field(float, 0.98, check=_fraction, hint="between 0 and 1"),
    },
    "benchmark": {
        "warmup": Field(int, 20, check=_non_negative, hint=">= 0"),
        "runs": Field(int, 200, check=_positive, hint="> 0"),
        "threads": Field(int, 1, check=_positive, hint="> 0"),
        "cooldown_s": Field(float, 0.0, check=_non_negative, hint=">= 0"),
        # host benchmark in interleaved rounds, each a fresh process per artifact: at least min_rounds, then more
        # until every speed-up's confidence interval is narrower than ci_rel_width of its ratio, or a limit is hit
        "min_rounds": Field(int, 3, check=_positive, hint="> 0"),
        "max_rounds": Field(int, 10, check=_positive, hint="> 0 (and >= min_rounds)"),
        "max_seconds": Field(float, 180.0, check=_positive, hint="> 0 (no round beyond min_rounds starts after this)"),
        "ci_rel_width": Field(float, 0.1, check=_positive, hint="> 0 (interval width / ratio)"),
    },
}


@dataclass(frozen=True)
class Config:
    """A validated recipe or target: its source file, its name and its settings tree."""

    path: Path
    name: str
    data: dict

    def section(self, key: str) -> dict:
        return self.data[key]


def read_toml(path: Path) -> dict:
    """Parse a TOML file; a syntax error names the file and the line."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None


def _resolve(name_or_path: str, folder: Path, kind: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        return p
    candidate = folder / f"{name_or_path}.toml"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(x.stem for x in folder.glob("*.toml")))
    raise ConfigError(name_or_path, "", f"no such {kind} (known: {known}; or give a path to a .toml file)")


def _check_recipe_semantics(path: Path, data: dict) -> None:
    weights = data["weights"]
    if weights["source"] == "state_dict":
        if not weights["path"]:
            raise ConfigError(path, "weights.path", "required when weights.source = 'state_dict'")
        wp = (path.parent / weights["path"]) if not Path(weights["path"]).is_absolute() else Path(weights["path"])
        if not wp.exists():
            raise ConfigError(path, "weights.path", f"{wp} does not exist")
    if weights["source"] == "pretrained" and data["model"]["arch"] != "efficientnet_lite0":
        raise ConfigError(path, "weights.source", "'pretrained' weights ship only for arch 'efficientnet_lite0'")
    if data["data"]["dataset"] == "photos":
        # scikit-image's photos are a handful of unlabelled pictures: nothing to train or fine-tune on
        if weights["source"] == "train":
            raise ConfigError(path, "weights.source", "the 'photos' dataset has no training split; load weights")
        if data["prune"]["enabled"]:
            raise ConfigError(path, "prune.enabled", "pruning is recovered by fine-tuning on labelled training data, "
                              "which the 'photos' dataset lacks; set it to false (PTQ still works)")
        if "qat" in data["quantize"]["methods"]:
            raise ConfigError(path, "quantize.methods", "'qat' trains on labelled data, which the 'photos' dataset "
                              "lacks; use [\"ptq\"]")


def load_recipe(name_or_path: str) -> Config:
    """Load and validate a recipe by name (pipeline/recipes/NAME.toml) or path."""
    path = _resolve(name_or_path, RECIPES_DIR, "recipe")
    data = validate(read_toml(path), RECIPE_SCHEMA, path)
    _check_recipe_semantics(path, data)
    return Config(path, data["recipe"]["name"], data)


def load_target(name_or_path: str) -> Config:
    """Load and validate a target by name (targets/NAME.toml) or path."""
    path = _resolve(name_or_path, TARGETS_DIR, "target")
    data = validate(read_toml(path), TARGET_SCHEMA, path)
    return Config(path, data["target"]["name"], data)


def weights_path(recipe: Config) -> Path:
    """Absolute path of a recipe's state_dict, relative paths taken from the recipe file's folder."""
    p = Path(recipe.data["weights"]["path"])
    return p if p.is_absolute() else recipe.path.parent / p


def list_configs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.toml"))

"""Recipes (model, data, compression settings) and targets (a device and how to reach it): TOML, validated on read."""

from __future__ import annotations

import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, shown
from pipeline.models.sources import SOURCE_NAMES
from pipeline.names import HINT as NAME_HINT
from pipeline.names import is_safe_name
from pipeline.schema import Field, validate

PACKAGE_DIR = Path(__file__).resolve().parent
RECIPES_DIR = PACKAGE_DIR / "recipes"
TARGETS_DIR = PACKAGE_DIR.parent / "targets"

ARTIFACT_KINDS = ("onnx-fp32", "tflite-fp32", "tflite-fp16", "tflite-int8", "pte-fp32", "pte-int8")
SEARCH_RUNTIMES = ("tflite", "executorch")
SEARCH_PRECISIONS = ("fp32", "fp16", "int8-ptq", "int8-qat")
IMPORTANCES = ("l1", "l2", "taylor", "bn_scale")
DATASETS = ("fashion-mnist", "mnist", "photos", "image-folder")  # pipeline/data registers one source for each
SEED_LIMIT = 2**32  # numpy's seeds are 32-bit


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


def _numbers(v: list) -> bool:
    return len(v) <= 4 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)


def _range(low: float, high: float = float("inf")):
    """A [low, high] pair of numbers within (or at) the given bounds, low <= high."""
    def check(v: list) -> bool:
        return (len(v) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
                and low <= v[0] <= v[1] <= high and v[1] > 0)
    return check


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
        "epochs": Field(float, epochs, check=lambda v: 0 <= v <= 10_000, hint=">= 0 and <= 10000"),
        "lr": Field(float, lr, check=_positive, hint="> 0"),
        "distill": Field(bool, True),
        "distill_temperature": Field(float, 4.0, check=_positive, hint="> 0"),
        "distill_weight": Field(float, weight, check=_fraction, hint="between 0 and 1"),
    }


RECIPE_SCHEMA: dict = {
    "recipe": {
        "name": Field(str, check=is_safe_name, hint=NAME_HINT),
        "version": Field(str, "0.1.0", check=is_safe_name, hint=NAME_HINT),
        "description": Field(str, ""),
    },
    "model": {  # pipeline/models/sources/: one file per source
        "source": Field(str, "registry", choices=SOURCE_NAMES),
        "arch": Field(str, ""),  # registry: a bundled architecture; package: the package's builder name
        "package": Field(str, ""),  # package: e.g. "geffnet"
        "entry": Field(str, ""),  # python: "path/to/file.py:build_fn" or "package.module:build_fn"
        "path": Field(str, ""),  # onnx / tflite: the model file
        "settings": Field(dict, dict, free_table=True),  # keyword arguments of the builder
    },
    "input": {  # 0 or []: taken from the model file or the dataset (pipeline/inputs.py)
        "height": Field(int, 0, check=_non_negative, hint=">= 0 (0: from the model file or the data)"),
        "width": Field(int, 0, check=_non_negative, hint=">= 0 (0: from the model file or the data)"),
        "channels": Field(int, 0, choices=(0, 1, 3)),
        "mean": Field(list, list, check=_numbers, hint="a list of numbers, one per channel (or one for all)"),
        "std": Field(list, list, check=_numbers, hint="a list of numbers, one per channel (or one for all)"),
        "range": Field(str, "0-1", choices=("0-1", "0-255")),
    },
    "weights": {
        "source": Field(str, "train", choices=("train", "state_dict", "pretrained")),
        "path": Field(str, ""),
    },
    "data": {
        "dataset": Field(str, "fashion-mnist", choices=DATASETS),
        "path": Field(str, ""),  # image-folder: one sub-folder per class, or train/ and val/ sub-trees
        "val_fraction": Field(float, 0.2, check=lambda v: 0.0 < v < 1.0, hint="between 0 and 1"),
        "split_seed": Field(int, 0, check=lambda v: 0 <= v < SEED_LIMIT, hint="0 to 2^32 - 1"),
        "eval_samples": Field(int, 0, check=_non_negative, hint=">= 0 (0: the whole test set)"),
        "calibration_samples": Field(int, 200, check=_positive, hint="> 0"),
    },
    "train": {
        "epochs": Field(float, 3.0, check=lambda v: 0 < v <= 10_000, hint="> 0 and <= 10000"),
        "batch_size": Field(int, 128, check=_positive, hint="> 0"),
        "lr": Field(float, 0.08, check=_positive, hint="> 0"),
        "weight_decay": Field(float, 4e-5, check=_non_negative, hint=">= 0"),
        "label_smoothing": Field(float, 0.0, check=_fraction, hint="between 0 and 1"),
        "schedule": Field(str, "onecycle", choices=("onecycle", "cosine", "constant")),
        "flip": Field(bool, True),
        "seed": Field(int, 0, check=lambda v: 0 <= v < SEED_LIMIT, hint="0 to 2^32 - 1"),
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
    "decompose": {  # low-rank factorisation (pipeline/compression/lowrank.py), before pruning
        "enabled": Field(bool, False),
        "energy": Field(float, 0.9, check=lambda v: 0.0 < v <= 1.0, hint="in (0, 1]: kept share of squared "
                        "singular values per layer"),
        "macs_factor": Field(float, 0.0, check=lambda v: v == 0.0 or v > 1.0, hint="0 (use energy) or > 1"),
        "min_saving": Field(float, 0.1, check=lambda v: 0.0 <= v < 1.0, hint="in [0, 1): share of a layer's MACs "
                            "factorising must save"),
        "min_macs": Field(int, 100_000, check=_non_negative, hint=">= 0 (MACs per image below which a layer is "
                          "left alone)"),
        "ignore": Field(list, lambda: ["classifier"]),
        "max_accuracy_drop": Field(float, 1.0, check=_non_negative, hint=">= 0 (points against the fp32 model)"),
        "finetune": _distilled_training(epochs=1.0, lr=0.01, weight=0.7),
    },
    "quantize": {
        "methods": Field(list, list, choices=("ptq", "qat")),
        "max_accuracy_drop": Field(float, 1.0, check=_non_negative, hint=">= 0 (points against the fp32 model)"),
        "sensitivity": Field(bool, False),  # rank layers by what int8 costs at each (one PTQ per layer)
        "fallback": Field(str, "none", choices=("none", "auto")),  # PTQ: most sensitive layers float until it passes
        "max_float_layers": Field(int, 3, check=_positive, hint="> 0"),
        "sensitivity_images": Field(int, 64, check=_positive, hint="> 0 (calibration images the ranking is "
                                    "measured on)"),
        "qat": _distilled_training(epochs=0.3, lr=0.005, weight=0.5),
    },
    "search": {  # `phone-pipeline search`: compression settings chosen by latency measured on the target
        "trials": Field(int, 12, check=_positive, hint="> 0"),
        "runtimes": Field(list, lambda: list(SEARCH_RUNTIMES), choices=SEARCH_RUNTIMES),
        "precisions": Field(list, lambda: list(SEARCH_PRECISIONS), choices=SEARCH_PRECISIONS),
        "prune": Field(bool, True),  # search pruning on/off and its macs_factor
        "macs_factor": Field(list, lambda: [1.5, 4.0], check=_range(1.0), hint="[low, high], both >= 1"),
        "importances": Field(list, lambda: ["l2"], choices=IMPORTANCES),
        "decompose": Field(bool, True),  # search low-rank decomposition on/off and its energy
        "energy": Field(list, lambda: [0.7, 0.95], check=_range(0.0, 1.0), hint="[low, high] within (0, 1]"),
        "eval_samples": Field(int, 2000, check=_non_negative, hint=">= 0 (0: the whole test set)"),
        "bench_runs": Field(int, 50, check=_positive, hint="> 0 (timed runs per round in a trial)"),
        "bench_rounds": Field(int, 2, check=_positive, hint="> 0 (rounds per trial)"),
        "max_latency_ms": Field(float, 0.0, check=_non_negative, hint=">= 0 (0: no budget)"),
        "min_speedup": Field(float, 0.0, check=_non_negative, hint=">= 0 (0: none), over fp32 of the same runtime"),
        "max_accuracy_drop": Field(float, 1.0, check=_non_negative, hint=">= 0 (points against the fp32 model)"),
        "sampler": Field(str, "tpe", choices=("tpe", "nsga2")),
        "seed": Field(int, 0, check=lambda v: 0 <= v < SEED_LIMIT, hint=f"in [0, {SEED_LIMIT})"),
        "heartbeat_seconds": Field(int, 10, check=_positive, hint="> 0 (a trial silent 3x this long was killed)"),
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
        "name": Field(str, check=is_safe_name, hint=NAME_HINT),
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
        # torch threads for training and conversion here; 0: training picks 1 or every core, whichever it measures
        # faster as it goes (pipeline/thread_tuner.py), everything else runs on 1
        "threads": Field(int, 1, check=_non_negative, hint=">= 0 (torch threads here; 0: training chooses)"),
        # independent child processes that run at once (onnx2tf conversions)
        "jobs": Field(int, 2, check=_positive, hint="> 0 (conversions run at once)"),
    },
    "artifacts": {
        "build": Field(list, lambda: list(ARTIFACT_KINDS), choices=ARTIFACT_KINDS),
    },
    "validation": {
        "samples": Field(int, 0, check=_non_negative, hint=">= 0 (0: whole test set)"),
        # the evaluate stage's slice of the evaluation set (search trials use a fixed slice); 0: the recipe's
        "eval_samples": Field(int, 0, check=_non_negative, hint=">= 0 (0: the recipe's data.eval_samples)"),
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


MAX_CONFIG_BYTES = 1 << 20  # a recipe or target is a few KB of text


def read_toml(path: Path) -> dict:
    """Parse a TOML file; anything that is not a readable TOML text file is one line naming the file."""
    try:
        if path.is_dir():
            raise ConfigError(path, "", "is a folder, not a TOML file")
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device would block or never end
            raise ConfigError(path, "", "is not a regular file (a pipe or a device?); give a TOML text file")
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(path, "", "is larger than 1 MB; a recipe or target is a small TOML text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, "", "is not UTF-8 text; a recipe or target is a TOML text file (is it a model "
                          "file? give it as model.path in a recipe)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(path, "", "not valid TOML: nested too deeply") from None


def _resolve(name_or_path: str, folder: Path, kind: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in name_or_path:
        return p
    candidate = folder / f"{name_or_path}.toml"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(x.stem for x in folder.glob("*.toml")))
    raise ConfigError(name_or_path, "", f"no such {kind} (known: {known}; or give a path to a .toml file)")


def _given(raw: dict, table: str, key: str) -> bool:
    section = raw.get(table)
    return isinstance(section, dict) and key in section


def _check_file_source(path: Path, data: dict, raw: dict) -> None:
    """An ONNX or TFLite file has no PyTorch module: asking for what needs one is refused here, in one line."""
    kind = data["model"]["source"]
    needs = [("weights", "source", "train, state_dict or pretrained weights"),
             ("prune", "enabled", "pruning"), ("decompose", "enabled", "low-rank decomposition"),
             ("quantize", "methods", "PT2E quantization")]
    for table, key, what in needs:
        asked = _given(raw, table, key) and (data[table][key] if key != "source" else True)
        if asked:
            raise ConfigError(path, f"{table}.{key}", f"{what} needs a PyTorch model, and model.source = "
                              f"'{kind}' is a file; remove it (int8 TFLite is still made from an ONNX file by "
                              "onnx2tf's calibration)")
    if _given(raw, "train", "epochs"):
        raise ConfigError(path, "train", f"a model.source = '{kind}' file is not trained; remove [train]")


def _check_weights(path: Path, data: dict, spec: dict) -> None:
    from pipeline.models import sources

    weights = data["weights"]
    if weights["source"] == "state_dict":
        if not weights["path"]:
            raise ConfigError(path, "weights.path", "required when weights.source = 'state_dict'")
        wp = (path.parent / weights["path"]) if not Path(weights["path"]).is_absolute() else Path(weights["path"])
        if not wp.exists():
            raise ConfigError(path, "weights.path", f"{wp} does not exist")
        if not wp.is_file():
            raise ConfigError(path, "weights.path", f"{wp} is not a file (a state_dict saved with torch.save)")
    if weights["source"] == "pretrained" and not sources.source(spec["source"]).has_pretrained(spec):
        hint = (" (geffnet downloads its pretrained weights from the internet at run time, which cannot work "
                "offline; train, or load a state_dict)") if spec["source"] == "package" else ""
        raise ConfigError(path, "weights.source", f"no packaged pretrained weights for {sources.describe(spec)}; "
                          f"'pretrained' ships for registry arch 'efficientnet_lite0'{hint}")


def _check_data_needs(path: Path, data: dict, pytorch: bool) -> None:
    from pipeline import data as datasets

    dataset = data["data"]["dataset"]
    if datasets.SOURCES[dataset].has_train or not pytorch:
        return
    # unlabelled evaluation pictures (the photos): nothing to train or fine-tune on
    if data["weights"]["source"] == "train":
        raise ConfigError(path, "weights.source", f"the {dataset!r} dataset has no training split; load weights")
    if data["prune"]["enabled"]:
        raise ConfigError(path, "prune.enabled", "pruning is recovered by fine-tuning on labelled training data, "
                          f"which the {dataset!r} dataset lacks; set it to false (PTQ still works)")
    if data["decompose"]["enabled"]:
        raise ConfigError(path, "decompose.enabled", "decomposition is recovered by fine-tuning on labelled training "
                          f"data, which the {dataset!r} dataset lacks; set it to false")
    if "qat" in data["quantize"]["methods"]:
        raise ConfigError(path, "quantize.methods", f"'qat' trains on labelled data, which the {dataset!r} dataset "
                          "lacks; use [\"ptq\"]")


def _check_recipe_semantics(path: Path, data: dict, raw: dict) -> None:
    """Cross-key rules; resolves the model spec, the data table and the input spec into `data` (absolute paths)."""
    from pipeline import data as datasets
    from pipeline import inputs
    from pipeline.models import sources
    from pipeline.models.sources import files

    spec = sources.check(data["model"], path)
    pytorch = sources.is_pytorch(spec)
    if not pytorch:
        _check_file_source(path, data, raw)
        data["weights"]["source"] = "none"
        data["quantize"]["methods"] = []
    else:
        _check_weights(path, data, spec)
    _check_data_needs(path, data, pytorch)
    source = datasets.SOURCES[data["data"]["dataset"]]
    if data["data"]["path"] and data["data"]["dataset"] != "image-folder":
        raise ConfigError(path, "data.path", f"only used with dataset 'image-folder' (this is "
                          f"{data['data']['dataset']!r})")
    data["data"] = source.check(data["data"], path)
    model_file = files.channels_and_size(spec) if not pytorch else None
    data["input"] = inputs.resolve(data["input"], source.input_defaults(data["data"]), model_file, path)
    data["model_spec"] = spec


def parse_overrides(items: list[str] | tuple[str, ...], where: str) -> dict[str, Any]:
    """'table.key=VALUE' texts (VALUE in TOML: 3, 0.5, true, "l2", ["ptq"]; a bare word is a string) -> a dict."""
    out: dict[str, Any] = {}
    for item in items:
        if not item.isprintable():  # TOML would end the value at a newline and drop the rest without a word
            raise ConfigError(where, shown(item), "holds a newline or another control character; give one "
                              f"table.key=VALUE per {where}")
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or "." not in key or not all(key.split(".")):
            raise ConfigError(where, item, "an override is table.key=VALUE, e.g. prune.macs_factor=3.0")
        try:
            out[key] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value.strip()
    return out


def apply_overrides(raw: dict, overrides: dict[str, Any], path: Path) -> dict:
    """Set dotted keys in a parsed TOML tree (a copy); the schema then checks them like keys of the file."""
    import copy

    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = raw
        *tables, last = key.split(".")
        for table in tables:
            node = node.setdefault(table, {})
            if not isinstance(node, dict):
                raise ConfigError(path, key, f"{table!r} is not a table")
        node[last] = value
    return raw


def load_recipe(name_or_path: str, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a recipe by name (pipeline/recipes/NAME.toml) or path, with optional dotted-key
    overrides (`run --set`, search trials) checked like the file's own keys."""
    path = _resolve(name_or_path, RECIPES_DIR, "recipe")
    raw = apply_overrides(read_toml(path), overrides or {}, path)
    data = validate(raw, RECIPE_SCHEMA, path)
    _check_recipe_semantics(path, data, raw)
    return Config(path, data["recipe"]["name"], data)


def load_target(name_or_path: str, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a target by name (targets/NAME.toml) or path, with optional dotted-key overrides."""
    path = _resolve(name_or_path, TARGETS_DIR, "target")
    data = validate(apply_overrides(read_toml(path), overrides or {}, path), TARGET_SCHEMA, path)
    return Config(path, data["target"]["name"], data)


def weights_path(recipe: Config) -> Path:
    """Absolute path of a recipe's state_dict, relative paths taken from the recipe file's folder."""
    p = Path(recipe.data["weights"]["path"])
    return p if p.is_absolute() else recipe.path.parent / p


def list_configs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.toml"))

"""Recipes (model, data, compression settings): loaded by name or path and validated against a schema assembled
from the stages' own tables (`Stage.schema`) and the tables no stage owns (pipeline/engine/recipe_tables.py), then
resolved: the model spec, the data table and the input spec, with the cross-key rules checked in one line each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.errors import PATH_LIMIT, ConfigError, UserError, shown
from pipeline.core.schema import validate
from pipeline.engine.recipe_tables import COMMON, TOOL_TABLES
from pipeline.recipe.config import Config
from pipeline.recipe.files import RECIPES_DIR, apply_overrides, read_toml, resolve
from pipeline.stages import STAGES

# The order tables are checked (and listed in errors) in.
TABLE_ORDER = ("recipe", "model", "input", "weights", "data", "train", "export", "prune", "decompose", "quantize",
               "search", "evaluate", "tolerances")


def recipe_schema() -> dict:
    """Every table a recipe may hold, each from its owner."""
    owned = {table: spec for stage in STAGES for table, spec in stage.schema.items()}
    tables = {**COMMON, **owned, **TOOL_TABLES}
    return {name: tables[name] for name in sorted(tables, key=lambda t: (TABLE_ORDER + (t,)).index(t))}


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
            raise ConfigError(path, "weights.path", f"{shown(wp, PATH_LIMIT)} does not exist")
        if not wp.is_file():
            raise ConfigError(path, "weights.path", f"{shown(wp, PATH_LIMIT)}"
                                                    " is not a file (a state_dict saved with torch.save)")
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


def _check_data_keys(path: Path, table: dict, source, raw: dict) -> None:
    """A [data] key that only other datasets read is refused (path, entry, train, val, inputs)."""
    from pipeline import data as datasets

    for key in sorted({k for s in datasets.SOURCES.values() for k in s.keys}):
        if _given(raw, "data", key) and table[key] and key not in source.keys:
            users = ", ".join(repr(s.name) for s in datasets.SOURCES.values() if key in s.keys)
            raise ConfigError(path, f"data.{key}", f"only used with dataset {users} (this is {source.name!r})")


def _check_recipe_semantics(path: Path, data: dict, raw: dict) -> None:
    """Cross-key rules; resolves the model spec, the data table and the input spec into `data` (absolute paths)."""
    from pipeline import data as datasets
    from pipeline.metrics import task as task_metric
    from pipeline.models import sources
    from pipeline.models.sources import files
    from pipeline.recipe import inputs

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
    _check_data_keys(path, data["data"], source, raw)
    data["data"] = source.check(data["data"], path)
    model_file = files.channels_and_size(spec) if not pytorch else None
    data["input"] = inputs.resolve(data["input"], source.input_defaults(data["data"]), model_file, path)
    if model_file and not datasets.is_pictures(Config(path, "", data)):  # a picture model file fed arrays
        from pipeline.artifacts.tensors import TensorSpec
        from pipeline.data.array_set import check_model_inputs

        c, h, w = model_file
        check_model_inputs((TensorSpec("input", (1, c, h, w)),), datasets.input_tensors(Config(path, "", data)),
                           f"{shown(path, PATH_LIMIT)}: [data]")
    data["model_spec"] = spec
    data["metric_spec"] = task_metric.check(data["evaluate"], path)


def load_recipe(name_or_path: str, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a recipe by name (pipeline/recipes/NAME.toml) or path, with optional dotted-key
    overrides (`run --set`, search trials) checked like the file's own keys."""
    path = resolve(name_or_path, RECIPES_DIR, "recipe")
    raw = apply_overrides(read_toml(path), overrides or {}, path)
    data = validate(raw, recipe_schema(), path)
    _check_recipe_semantics(path, data, raw)
    return Config(path, data["recipe"]["name"], data)


def recipe_of(manifest: dict, run_dir: Path, given: str | None):
    """The recipe to rebuild a run's models and data with: the one the user passes (`--recipe`), or the bundled recipe
    the manifest names when its sha256 is the one recorded. Never a path the run folder names: loading a recipe
    imports its model code, and a run folder is data from outside."""
    from pipeline.artifacts.artifact import sha256_file
    from pipeline.recipe.files import RECIPES_DIR

    name = manifest["recipe"]["name"]
    if given is not None:
        recipe = load_recipe(given)
        if recipe.name != name:
            raise UserError(f"--recipe {shown(given)}: recipe {recipe.name!r}, but the run in {run_dir} was made by "
                            f"recipe {name!r}; pass that one")
        return recipe
    bundled = RECIPES_DIR / f"{name}.toml"
    if bundled.is_file() and sha256_file(bundled) == manifest["recipe"]["sha256"]:
        return load_recipe(str(bundled))
    raise UserError(f"{run_dir}: its recipe {name!r} is not a bundled recipe of this pipeline as recorded (a run "
                    "folder cannot choose code to import); pass the recipe it was made with: --recipe PATH")

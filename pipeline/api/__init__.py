"""The Python API: your `nn.Module` (or an .onnx/.tflite file) in, validated artifacts and their numbers out.

The same stages, cache, gates and reports as `phone-pipeline run` (one pipeline, two doors): `run` writes the recipe
it assembled to `<build_dir>/api/recipes/<name>.toml` and runs that file, so every run from Python can be repeated
from the shell. A module defined in a notebook cell travels as a cloudpickle file named after a fingerprint of its
code and weights (pipeline/api/modules.py): running the same cell again does no work, and changing a weight, the
class's code or a setting re-runs what depends on it. Data that are not pictures come as `Arrays(...)` (numpy arrays
in files or in memory) or `Dataset(train, val)` (iterables of (inputs, target) pairs): arrays in memory are written
once into the build's array cache under a hash of their contents (pipeline/api/data_sources.py), and a metric
function travels as a module does (pipeline/api/metrics.py). Every refusal is a `PipelineError` carrying the line
the CLI prints, never `SystemExit`.

Example (a notebook or a script; nothing here needs an `if __name__ == "__main__"` guard)::

    >>> import torch.nn as nn
    >>> from pipeline.api import run
    >>> net = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2), nn.BatchNorm2d(16), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    >>> result = run(net, "fashion-mnist", train={"epochs": 1}, quantize={"methods": ["ptq"]})  # doctest: +SKIP
    >>> print(result.table())                                                                   # doctest: +SKIP
    >>> result.best(max_drop=1.0)                                                               # doctest: +SKIP

Importing this module is cheap (no torch, TensorFlow or ExecuTorch): they load when a stage needs them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.api.data_sources import Arrays, Dataset, ImageFolder, data_table
from pipeline.api.results import ArtifactResult, Run, Search
from pipeline.core.errors import PipelineError, UserError

__all__ = ["run", "plan", "search", "release", "debug", "profile", "Run", "Search", "ArtifactResult",
           "ImageFolder", "Arrays", "Dataset", "PipelineError"]

DEFAULT_RECIPE = "fashion-mnist-mobilenetv2"  # the compression settings a module gets when no recipe is given
_PATH_KEYS = (("model", "path"), ("weights", "path"), ("data", "path"), ("data", "train"), ("data", "val"))
_SHARED_DATA_KEYS = ("eval_samples", "calibration_samples")  # [data] keys every dataset takes


def run(model: Any = None, data: Any = None, target: str = "host", recipe: str | Path | dict | None = None, *,
        metric: str | Callable | None = None, higher_is_better: bool | None = None,
        build_dir: str | Path = "build", gates: bool = True, threads: int | None = None, force: bool = False,
        from_stage: str | None = None, only: tuple[str, ...] = (), **settings: dict) -> Run:
    """Train (or load), compress, convert, validate and benchmark `model` on `target`; returns the finished Run.

    `model`: an `nn.Module` (trained by the recipe's [train] unless `weights={"source": "pretrained"}`, which keeps
    its weights), a recipe's [model] table as a dict, the path of an .onnx or .tflite file, or None for the recipe's
    own model. `data`: a bundled data set's name, `ImageFolder(path)`, `Arrays(...)` (numpy arrays in files or in
    memory), `Dataset(train, val)` (iterables of (inputs, target) pairs), a [data] table, or None for the recipe's
    own (a module without a recipe: Fashion-MNIST). `recipe`: a recipe name or file, or a recipe as a dict;
    without one, a module gets the default recipe's settings (pruning 2x, PTQ and QAT) and a file gets none.
    `metric`: what "accuracy" means in gates and reports: "top1", "top5", "mse", "mae", "auto" (top1 for class ids,
    mse for values), "file.py:function", or a function `fn(outputs, targets) -> float` called once on the whole
    evaluation set (outputs: the first output's array, or {output name: array} for a model with several);
    `higher_is_better` says which way a function's number is better (default True). A function travels to the
    stages as a cloudpickle file, as a module does (pipeline/api/metrics.py).
    `settings`: recipe tables to change, e.g. `prune={"macs_factor": 3.0}, quantize={"methods": ["ptq"]}`.
    A failed gate raises PipelineError (exit_code 3) after the report is written; `gates=False` finishes anyway.
    `force`, `from_stage` and `only` are the CLI's --force, --from and --only.

    >>> from pipeline.api import run, Arrays
    >>> result = run("model.onnx", "photos")   # doctest: +SKIP
    >>> result = run(net, Arrays({"mfcc": x, "frames": f}, labels=y), metric="top1")   # doctest: +SKIP
    """
    with _refusals(), _console_log():
        from pipeline.engine import runner
        from pipeline.recipe.targets import load_target

        build = Path(build_dir)
        loaded = _recipe(model, data, recipe, _with_metric(settings, metric, higher_is_better, build), build)
        target_config = load_target(target)
        opts = runner.RunOptions(build_dir=build, no_gates=not gates, threads=threads, force=force,
                                 from_stage=from_stage, only=tuple(only), explain=_explainer())
        return Run(runner.run(loaded, target_config, opts), loaded.path)


def plan(model: Any = None, data: Any = None, target: str = "host", recipe: str | Path | dict | None = None, *,
         metric: str | Callable | None = None, higher_is_better: bool | None = None,
         build_dir: str | Path = "build", force: bool = False, from_stage: str | None = None,
         only: tuple[str, ...] = (), **settings: dict) -> str:
    """What `run` with these arguments would do, stage by stage (each key, and cached, run, background or rebuilt,
    and why), without running or writing anything but the assembled recipe file: the CLI's `run --dry-run`.

    >>> from pipeline.api import plan
    >>> print(plan(recipe="fashion-mnist-mobilenetv2"))   # doctest: +SKIP
    """
    with _refusals():
        from pipeline.engine import runner
        from pipeline.recipe.targets import load_target

        build = Path(build_dir)
        loaded = _recipe(model, data, recipe, _with_metric(settings, metric, higher_is_better, build), build)
        opts = runner.RunOptions(build_dir=build, force=force, from_stage=from_stage, only=tuple(only))
        return runner.dry_run(loaded, load_target(target), opts).describe()


def search(model: Any = None, data: Any = None, target: str = "host", recipe: str | Path | dict | None = None,
           *, metric: str | Callable | None = None, higher_is_better: bool | None = None,
           build_dir: str | Path = "build", trials: int | None = None, workers: int = 1,
           **settings: dict) -> Search:
    """The best compression settings for `model` under the recipe's [search] budget, measured on `target`
    (`data`, `metric` and `settings` as `run` takes them).

    >>> from pipeline.api import search
    >>> found = search(net, "fashion-mnist", trials=6)   # doctest: +SKIP
    >>> found.choice["settings"], found.run.best()        # doctest: +SKIP
    """
    with _refusals(), _console_log():
        from pipeline.recipe.targets import load_target
        from pipeline.search import SearchOptions, run_search

        build = Path(build_dir)
        loaded = _recipe(model, data, recipe, _with_metric(settings, metric, higher_is_better, build), build)
        opts = SearchOptions(build_dir=build, workers=workers, trials=trials)
        target_config = load_target(target)
        return Search(run_search(loaded, target_config, opts), loaded.path, target_config.path)


def release(run_or_search: Run | Search, target: str | None = None, *, out: str | Path | None = None,
            recipe: str | Path | None = None, build_dir: str | Path = "build") -> Path:
    """Bundle what `run_or_search` made (for a Search: its chosen trial's artifact); returns the .tar.gz path.
    `recipe`: the recipe file of a run or search this process did not make (a folder names no code to load).

    >>> from pipeline.api import release
    >>> release(result)   # doctest: +SKIP
    PosixPath('build/release/....tar.gz')
    """
    with _refusals(), _console_log():
        from pipeline.engine.recipes import load_recipe
        from pipeline.recipe.targets import load_target
        from pipeline.release.make import release as make_release

        searched = isinstance(run_or_search, Search)
        given = recipe or run_or_search.recipe
        if given is None:
            raise PipelineError("release: this run was not made by this process; pass recipe= (the recipe file it "
                                "was made from): a run folder names no code to load", key="recipe")
        recipe_config = load_recipe(str(given))
        if target is None and searched:
            target = str(run_or_search.target) if run_or_search.target else None
        if target is None and not searched:
            target = _manifest(run_or_search)["target"]["name"]  # a name: loaded from targets/, never a path
        target_config = load_target(target or "host")
        build = Path(build_dir) if searched else _build_dir_of(run_or_search, recipe_config.name, target_config.name)
        made = make_release(recipe_config, target_config, build, Path(out) if out else None, search=searched)
        return made.archive


def debug(run: Run, artifact: str, *, against: str = "torch", samples: int | None = None,
          recipe: str | Path | None = None) -> dict:
    """Which layer broke it: `artifact`'s layers against its PyTorch model (`against="source"`: a TFLite file
    against the ONNX file it came from). Returns the page's data (`first_divergent_layer`, `layers`, ...) with its
    `page` path. `recipe`: the recipe file of a run this process did not make (a run folder names no code to load).

    >>> from pipeline.api import debug
    >>> debug(result, "tflite-pruned-int8-ptq")["first_divergent_layer"]   # doctest: +SKIP
    """
    import json

    with _refusals(), _console_log():
        from pipeline.debug import SAMPLES
        from pipeline.debug import debug as debug_page

        given = recipe or run.recipe
        page = debug_page(run.folder, artifact, samples=samples or SAMPLES, against=against,
                          recipe=str(given) if given else None)
        return {**json.loads(page.with_suffix(".json").read_text()), "page": page}


def profile(run: Run, artifact: str, *, runs: int = 20, threads: int = 1, recipe: str | Path | None = None) -> dict:
    """Where `artifact`'s time goes, operator by operator (.pte: measured per operator; .tflite: its operators).

    >>> from pipeline.api import profile
    >>> profile(result, "pte-fp32")["profile"]   # doctest: +SKIP
    """
    with _refusals(), _console_log():
        from pipeline.profile import profile as profile_page

        given = recipe or run.recipe
        page, record = profile_page(run.folder, artifact, runs=runs, threads=threads,
                                    recipe=str(given) if given else None)
        return {**record, "page": page}


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Every refusal of the pipeline as a PipelineError with the CLI's line."""
    try:
        yield
    except UserError as exc:
        raise PipelineError.of(exc) from None


@contextlib.contextmanager
def _console_log() -> Iterator[None]:
    """The pipeline's progress lines on stderr for this call, unless the caller configured logging themselves
    (importing configures nothing)."""
    log = logging.getLogger("pipeline")
    if log.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # a library that configures the root logger during the run must not print lines twice
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


def _explainer():
    from pipeline.debug import explain_gate_failures

    return explain_gate_failures


def _manifest(done: Run) -> dict:
    from pipeline.artifacts.manifest import load

    return load(done.folder / "manifest.json")  # checked: its names are names, not paths


def _build_dir_of(done: Run, recipe: str, target: str) -> Path:
    """The build folder a run folder belongs to (build/runs/<recipe>__<target>), or the default one."""
    folder = done.folder.resolve()
    return folder.parent.parent if folder.parent.name == "runs" and folder.name == f"{recipe}__{target}" \
        else Path("build")


def _recipe(model: Any, data: Any, recipe: str | Path | dict | None, settings: dict, build: Path):
    """The recipe for this call: a recipe file as it is, or the one assembled from the arguments, written under
    `build`/api/recipes and loaded like any recipe (so both doors refuse the same things with the same line)."""
    import tomli_w

    from pipeline.artifacts.artifact import atomic_write_bytes
    from pipeline.engine.recipes import load_recipe

    if model is None and data is None and not settings and isinstance(recipe, str | Path):
        return load_recipe(str(recipe))
    raw, name = _base(model, recipe)
    model_name = name or "recipe"
    if model is not None:
        raw["model"], model_name = _model_table(model, build)
    if data is not None or "data" not in raw:
        base = raw.get("data", {})
        if data is not None and not isinstance(data, dict):  # another data source: only the keys every one takes
            base = {k: v for k, v in base.items() if k in _SHARED_DATA_KEYS}
        raw["data"] = {**base, **data_table(data if data is not None else "fashion-mnist", build)}
    for table, values in settings.items():
        if not isinstance(values, dict):
            raise PipelineError(f"{table}={values!r}: a recipe setting is a table, e.g. {table}={{...}}", key=table)
        raw[table] = _merged(raw.get(table, {}), values)
    raw.setdefault("recipe", {})["name"] = name or model_name
    path = build.resolve() / "api" / "recipes" / f"{raw['recipe']['name']}.toml"
    text = tomli_w.dumps(raw).encode()
    if not path.is_file() or path.read_bytes() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text)
    return load_recipe(str(path))


def _with_metric(settings: dict, metric: Any, higher_is_better: bool | None, build: Path) -> dict:
    """`settings` with the metric arguments in their [evaluate] table (a function stored as pipeline/api/metrics.py
    says)."""
    from pipeline.api.metrics import evaluate_table

    table = evaluate_table(metric, higher_is_better, build)
    if not table:
        return settings
    given = settings.get("evaluate", {})
    return {**settings, "evaluate": {**given, **table} if isinstance(given, dict) else given}


def _base(model: Any, recipe: str | Path | dict | None) -> tuple[dict, str | None]:
    """The recipe to start from (a copy, its relative paths made absolute) and its name, if it has one."""
    from pipeline.recipe.files import RECIPES_DIR, read_toml, resolve

    if isinstance(recipe, dict):
        return copy.deepcopy(recipe), recipe.get("recipe", {}).get("name")
    if recipe is None and _is_file_model(model):
        return {}, None
    path = resolve(str(recipe or DEFAULT_RECIPE), RECIPES_DIR, "recipe")
    raw = read_toml(path)
    for table, key in _PATH_KEYS:
        value = raw.get(table, {}).get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            raw[table][key] = str((path.parent / value).resolve())
    entry = raw.get("model", {}).get("entry", "")
    if isinstance(entry, str) and ".py:" in entry and not Path(entry.split(":")[0]).is_absolute():
        raw["model"]["entry"] = str((path.parent / entry.split(":")[0]).resolve()) + ":" + entry.split(":", 1)[1]
    return raw, (None if recipe is None else raw.get("recipe", {}).get("name"))


def _is_file_model(model: Any) -> bool:
    return isinstance(model, str | Path) and Path(model).suffix.lower() in (".onnx", ".tflite")


def _model_table(model: Any, build: Path) -> tuple[dict, str]:
    """The [model] table for `model`, and a recipe name that says what it is."""
    if _is_file_model(model):
        path = Path(model).resolve()
        return {"source": path.suffix.lower().lstrip("."), "path": str(path)}, _safe(path.stem)
    if isinstance(model, dict):
        return dict(model), _safe(str(model.get("arch") or model.get("entry") or "model").split(":")[-1])
    try:
        import torch.nn as nn
    except ImportError:  # pragma: no cover - torch is in the lock
        nn = None
    if nn is not None and isinstance(model, nn.Module):
        from pipeline.api.modules import store

        path, digest = store(model, build.resolve() / "api" / "modules")
        return {"source": "object", "path": str(path)}, f"{_safe(type(model).__name__)}-{digest[:10]}"
    raise PipelineError(f"model: a {type(model).__name__} is not a model; give an nn.Module, a [model] table as a "
                        "dict, or the path of an .onnx or .tflite file", key="model")


def _safe(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.").lower()[:60]
    return name if name and name[0].isalnum() else f"model-{name}".rstrip("-")


def _merged(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out.get(key, {}), value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out

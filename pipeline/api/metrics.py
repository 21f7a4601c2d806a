"""The task metric a Python caller gives `run(..., metric=...)`: a built-in's name as `[evaluate] metric` has it
("top1", "top5", "mse", "mae", "auto", or "file.py:function"), or a Python function `fn(outputs, targets) -> float`.

A function reaches the stages that score with it (train, prune's fine-tune, quantize, evaluate; some in fresh
processes) the way a module does (pipeline/api/modules.py): cloudpickled to `<build>/api/metrics/<sha256>.pkl`,
named after a fingerprint of its code, defaults and closure, beside a two-line `<sha256>-<name>.py` that loads it,
and named to the recipe as `metric = "<that file>:<its name>"`. So the recipe the API writes runs from the shell
too, the same function again finds every cached stage, and an edited function re-scores what depends on it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.core.errors import PipelineError

_LOADER = '''"""The metric function {name} given to pipeline.api.run, stored by value beside this file (cloudpickle)."""
import pathlib

import cloudpickle

with open(pathlib.Path(__file__).with_name("{pkl}"), "rb") as _file:
    {name} = cloudpickle.load(_file)
'''


def evaluate_table(metric: str | Callable | None, higher_is_better: bool | None, build: Path) -> dict:
    """The [evaluate] keys for `metric` and `higher_is_better` (empty when neither is given)."""
    out: dict = {} if higher_is_better is None else {"higher_is_better": bool(higher_is_better)}
    if metric is None or isinstance(metric, str):
        return {**out, **({"metric": metric} if metric is not None else {})}
    if not callable(metric):
        raise PipelineError(f"metric={metric!r}: give a built-in's name ('top1', 'top5', 'mse', 'mae'), "
                            "'file.py:function', or a function (outputs, targets) -> float", key="evaluate.metric")
    return {**out, "metric": _stored(metric, build.resolve() / "api" / "metrics")}


def _stored(fn: Callable, folder: Path) -> str:
    from pipeline.api.modules import store_function
    from pipeline.artifacts.artifact import atomic_write_bytes

    path, _ = store_function(fn, folder)
    name = getattr(fn, "__name__", "")
    name = name if name.isidentifier() and not name.startswith("_") else "metric"
    loader = path.with_name(f"{path.stem}-{name}.py")
    text = _LOADER.format(name=name, pkl=path.name).encode()
    if not loader.is_file() or loader.read_bytes() != text:
        atomic_write_bytes(loader, text)
    return f"{loader}:{name}"

"""The user's task metric: `[evaluate] metric` names a built-in or the user's own function, and every gate and report
line about "accuracy" is in its terms.

Built-ins score the model's first output against the targets: `top1` and `top5` (class ids; a fraction of the
samples, gates in percentage points), `mse` and `mae` (targets of the output's shape; lower is better, gates in the
metric's own units). `auto` is top1 for class ids, mse for float targets. The user's own is
`metric = "my_metric.py:score"`: called once with (outputs, targets) for the whole evaluation set, where outputs is
the first output's array for a one-output model and a dict {output name: array} otherwise; it returns a finite float,
and `higher_is_better` says which way is better.

Example::

    >>> import numpy as np
    >>> spec = {"name": "top1", "higher_is_better": True}
    >>> score(spec, [np.array([[0.1, 0.9], [0.8, 0.2]])], ["scores"], np.array([1, 1]))
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.core.errors import PATH_LIMIT, UserError, shown
from pipeline.core.user_code import entry_spec, resolve

BUILT_IN = ("auto", "top1", "top5", "mse", "mae")
LOWER_IS_BETTER = ("mse", "mae")
FRACTIONS = ("top1", "top5")  # scored as a fraction of the samples: drops are reported in percentage points


def _topk(out: np.ndarray, targets: np.ndarray, k: int) -> float:
    out = out.reshape(len(out), -1)
    k = min(k, out.shape[1])
    best = np.argpartition(-out, k - 1, axis=1)[:, :k]
    return float((best == targets.reshape(-1, 1)).any(1).mean())


def _regression(out: np.ndarray, targets: np.ndarray, fn: Callable) -> float:
    t = targets.astype(np.float64)
    if t.size != out.size:
        raise UserError(f"evaluate.metric: the first output has {out.size // max(len(out), 1)} values per sample but "
                        f"the targets have {t.size // max(len(t), 1)}; score another output with your own metric")
    return float(fn(out.astype(np.float64).reshape(t.shape) - t).mean())


def check(table: dict, recipe_path: Path) -> dict:
    """The [evaluate] metric settings -> a spec `score` takes (a user function is imported and checked here)."""
    name = table["metric"]
    if name in BUILT_IN:
        return {"name": name, "higher_is_better": name not in LOWER_IS_BETTER}
    spec = entry_spec(name, recipe_path, "evaluate.metric")
    resolve(spec)
    return {"name": "user", "entry": spec, "label": name.rpartition(":")[2],
            "higher_is_better": bool(table["higher_is_better"])}


def resolved(spec: dict, targets: np.ndarray | None) -> dict:
    """`auto` made concrete for these targets (top1 for class ids, mse for float targets)."""
    if spec["name"] != "auto":
        return spec
    if targets is not None and targets.ndim == 1 and np.issubdtype(targets.dtype, np.integer):
        return {"name": "top1", "higher_is_better": True}
    return {"name": "mse", "higher_is_better": False}


def label(spec: dict) -> str:
    """The metric's name as reports print it."""
    return spec.get("label", spec["name"])


def is_fraction(spec: dict) -> bool:
    return spec["name"] in FRACTIONS


def score(spec: dict, outputs: list[np.ndarray], names: list[str], targets: np.ndarray) -> float:
    """The metric of a model's outputs on the evaluation set (UserError when a user metric fails or returns
    something other than a finite float)."""
    name = spec["name"]
    first = outputs[0]
    if name == "top1":
        return _topk(first, targets, 1)
    if name == "top5":
        return _topk(first, targets, 5)
    if name == "mse":
        return _regression(first, targets, np.square)
    if name == "mae":
        return _regression(first, targets, np.abs)
    fn = resolve(spec["entry"])
    where = f"evaluate.metric {spec['entry']['entry_text']!r}"
    given = outputs[0] if len(outputs) == 1 else dict(zip(names, outputs, strict=True))
    try:
        value = fn(given, targets)
    except Exception as exc:  # the user's code may fail in any way
        raise UserError(f"{where} raised {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}; "
                        f"it is called with (outputs, targets) for the whole evaluation set") from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where} returned {shown(repr(value), PATH_LIMIT // 4)} ({type(value).__name__}); "
                        "it must return one finite float") from None
    if not math.isfinite(number) or isinstance(value, bool):
        raise UserError(f"{where} returned {value!r}; it must return one finite float")
    return number


def drop(spec: dict, reference: float, value: float) -> float:
    """How much worse `value` is than `reference` (positive: worse), in percentage points for fractions."""
    worse = reference - value if spec["higher_is_better"] else value - reference
    return round(100 * worse if is_fraction(spec) else worse, 6)


def unit(spec: dict) -> str:
    return "points" if is_fraction(spec) else f"{label(spec)} units"



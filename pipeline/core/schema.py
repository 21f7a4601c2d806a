"""Declarative settings schemas, checked at the door: unknown keys, wrong types and bad values name file and key.

A schema is a dict of key -> Field or nested dict (a TOML table). Example::

    >>> spec = {"train": {"epochs": Field(float, 3.0, check=lambda v: v > 0, hint="> 0")}}
    >>> validate({"train": {"epochs": 2}}, spec, "r.toml")
    {'train': {'epochs': 2.0}}
    >>> validate({"train": {"epoch": 2}}, spec, "r.toml")
    Traceback (most recent call last):
    pipeline.core.errors.ConfigError: r.toml: train.epoch: unknown key (did you mean 'epochs'?)
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.core.errors import ConfigError, shown

REQUIRED = object()
# Integers must fit the 64-bit C type every library below us converts them to (torch, numpy).
INT_LIMIT = 2**63


@dataclass(frozen=True)
class Field:
    """One setting: its type, default (REQUIRED if none), allowed values or a check, and a hint for errors."""

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], bool] | None = None
    hint: str = ""
    free_table: bool = False  # a dict whose keys are free (e.g. model builder settings)


def _type_name(t: type | tuple[type, ...]) -> str:
    names = [x.__name__ for x in (t if isinstance(t, tuple) else (t,))]
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
            "list": "a list", "dict": "a table"}.get(names[0], names[0]) if len(names) == 1 else " or ".join(names)


def _coerce(value: Any, field: Field, path: str, key: str) -> Any:
    want = field.type
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and want in (int, float):
        raise ConfigError(path, key, f"expected {_type_name(want)}, got {value!r}")
    if not isinstance(value, want):
        raise ConfigError(path, key, f"expected {_type_name(want)}, got {_shorten(value)}")
    _check_numbers(value, path, key)
    if field.choices is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in field.choices:
                allowed = ", ".join(map(repr, field.choices))
                raise ConfigError(path, key, f"{_shorten(item)} is not one of {allowed}")
    if field.check is not None and not field.check(value):
        raise ConfigError(path, key, f"{_shorten(value)} is not allowed" + (f" (must be {field.hint})" if field.hint
                                                                           else ""))
    return value


def _shorten(value: Any, limit: int = 60) -> str:
    """A value from a file as an error shows it: its repr, cut to `limit` characters."""
    return shown(repr(value), limit)


def _check_numbers(value: Any, path: str, key: str) -> None:
    """Non-finite floats and integers beyond 64 bits are refused, also inside lists and free tables."""
    if isinstance(value, dict):
        for name, item in value.items():
            _check_numbers(item, path, f"{key}.{name}")
    elif isinstance(value, list):
        for item in value:
            _check_numbers(item, path, key)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, key, f"{value!r} is not allowed (must be a finite number)")
    elif isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT < value < INT_LIMIT:
        raise ConfigError(path, key, f"{_shorten(value)} is out of range (must be within +-2^63)")


def validate(data: dict, schema: dict, path: object, prefix: str = "") -> dict:
    """Return `data` checked against `schema`, with defaults filled in; raises ConfigError naming the key path."""
    out: dict[str, Any] = {}
    for key in data:
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            tip = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(schema))})"
            raise ConfigError(path, prefix + key, "unknown key" + tip)
    for key, spec in schema.items():
        full = prefix + key
        if isinstance(spec, dict):
            sub = data.get(key, {})
            if not isinstance(sub, dict):
                raise ConfigError(path, full, f"expected a table, got {_shorten(sub)}")
            out[key] = validate(sub, spec, path, full + ".")
        elif key in data:
            out[key] = _coerce(data[key], spec, str(path), full)
        elif spec.default is REQUIRED:
            raise ConfigError(path, full, "missing required key")
        else:
            out[key] = spec.default() if callable(spec.default) else spec.default
    return out


# Checks shared by the settings schemas of every layer (recipes, targets, stages).
SEED_LIMIT = 2**32  # numpy's seeds are 32-bit


def positive(v: Any) -> bool:
    return v > 0


def non_negative(v: Any) -> bool:
    return v >= 0


def fraction(v: Any) -> bool:
    return 0.0 <= v <= 1.0


def seed(v: Any) -> bool:
    return 0 <= v < SEED_LIMIT


def numbers(v: list) -> bool:
    """Up to four numbers (one per channel, or one for all)."""
    return len(v) <= 4 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)


def number_range(low: float, high: float = float("inf")) -> Callable[[list], bool]:
    """A [low, high] pair of numbers within (or at) the given bounds, low <= high."""
    def check(v: list) -> bool:
        return (len(v) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
                and low <= v[0] <= v[1] <= high and v[1] > 0)
    return check

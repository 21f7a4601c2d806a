"""Check a recipe's [model.settings] against the builder's signature, so a typo names the key, not a TypeError."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from pathlib import Path

from pipeline.core.errors import ConfigError, shown


def accepted(fn: Callable) -> set[str] | None:
    """Keyword names `fn` takes, or None when it takes **kwargs (then only building the model can tell)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                 inspect.Parameter.KEYWORD_ONLY)}


def check_settings(fn: Callable, settings: dict, recipe_path: Path, what: str) -> None:
    names = accepted(fn)
    if names is None:
        return
    for key in settings:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            tip = f" (did you mean {close[0]!r}?)" if close else f" (it takes: {', '.join(sorted(names)) or 'none'})"
            raise ConfigError(recipe_path, f"model.settings.{key}", f"{what} takes no setting '{shown(key)}'{tip}")

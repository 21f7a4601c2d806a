"""source = "python": the user's own builder, `entry = "path/to/file.py:build_fn"` or `"package.module:build_fn"`.

The function is called with the [model.settings] table as keyword arguments and must return an ``nn.Module``.
Importing and hashing the user's code is pipeline/core/user_code.py.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from pipeline.core.errors import ConfigError
from pipeline.core.user_code import FORMS, entry_spec, fingerprint, resolve
from pipeline.models.sources import ModelSource
from pipeline.models.sources.settings import check_settings


def check(table: dict, recipe_path: Path) -> dict:
    entry = table["entry"]
    if not entry:
        raise ConfigError(recipe_path, "model.entry", f"required when model.source = 'python' ({FORMS})")
    spec = {"source": "python", "settings": dict(table["settings"]), **entry_spec(entry, recipe_path, "model.entry")}
    check_settings(resolve(spec), spec["settings"], recipe_path, spec["entry_text"])
    return spec


def build(spec: dict, pretrained: bool) -> nn.Module:
    return resolve(spec)(**spec["settings"])


SOURCE = ModelSource("python", check, build, fingerprint)

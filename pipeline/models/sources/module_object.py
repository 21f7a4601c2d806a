"""source = "object": a live `nn.Module` handed to the Python API (`pipeline.api.run(model, ...)`), carried as a
cloudpickle file so that later stages and fresh processes rebuild it without importing the caller's code.

A class defined in a notebook cell or in an unguarded script has no file another process can import; cloudpickle
stores such classes by value (their code travels inside the file). The API names the file after a fingerprint of
what decides the result (the classes' source text, the module's structure and its weights), so running the same cell
again finds the same file and every cached stage; `fingerprint` returns that name. The metadata of every artifact
says how the model was carried (`extra["model"]["carried_as"]`).

Unpickling runs code: the file must be one the API wrote into the build folder. A recipe that names another file
trusts it as it would trust `source = "python"` code.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch.nn as nn

from pipeline.core.errors import PATH_LIMIT, ConfigError, UserError, shown
from pipeline.models.sources import ModelSource

CARRIED_AS = "cloudpickle (classes defined outside an importable file are stored by value)"
_NAME = re.compile(r"[0-9a-f]{64}\.pkl")  # <fingerprint>.pkl, as the API writes it


def _check(table: dict, recipe_path: Path) -> dict:
    if not table["path"]:
        raise ConfigError(recipe_path, "model.path", "required when model.source = 'object' (a module file the "
                          "Python API wrote)")
    path = Path(table["path"])
    path = path if path.is_absolute() else recipe_path.parent / path
    if not path.is_file():
        raise ConfigError(recipe_path, "model.path", f"{shown(path, PATH_LIMIT)} is not a file")
    if not _NAME.fullmatch(path.name):
        raise ConfigError(recipe_path, "model.path", f"{shown(path.name)} is not a module file written by the "
                          "Python API (<64 hex digits>.pkl)")
    return {"source": "object", "path": str(path.resolve()), "carried_as": CARRIED_AS, "recipe": str(recipe_path)}


def _build(spec: dict, pretrained: bool) -> nn.Module:
    import cloudpickle

    try:
        with open(spec["path"], "rb") as f:
            model = cloudpickle.load(f)
    except Exception as exc:  # a file from an older environment, or damaged
        raise UserError(f"{shown(spec['path'], PATH_LIMIT)}: the module cannot be rebuilt ({type(exc).__name__}: "
                        f"{shown(exc, 120)}); run it again from Python to write it anew") from None
    return model


def _fingerprint(spec: dict) -> dict:
    return {"object": Path(spec["path"]).stem}


SOURCE = ModelSource("object", _check, _build, _fingerprint, has_pretrained=lambda spec: True)

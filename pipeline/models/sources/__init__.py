"""Where a recipe's network comes from: one contract, one file per kind, registered by name.

Every source turns the recipe's ``[model]`` table into a *model spec*: the same table with paths made absolute, which
is all a fresh process needs to rebuild the network (artifacts record it as ``extra["model"]``). PyTorch sources
build an ``nn.Module``; file sources (``onnx``, ``tflite``) name a file that enters the pipeline as an artifact.

A new kind is one new file with a ``SOURCE`` and one line in ``SOURCES``. Example::

    >>> from pathlib import Path
    >>> spec = check({"source": "registry", "arch": "resnet_small", "package": "", "entry": "", "path": "",
    ...               "settings": {"widths": [8, 16]}}, Path("r.toml"))
    >>> type(build(spec)).__name__
    'ResNetSmall'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from pipeline.core.errors import ConfigError, UserError, shown


@dataclass(frozen=True)
class ModelSource:
    """One kind of model source."""

    name: str
    check: Callable[[dict, Path], dict]  # [model] table, recipe file -> model spec; ConfigError names the key
    build: Callable[[dict, bool], nn.Module] | None  # (spec, load packaged weights) -> module; None: a file source
    fingerprint: Callable[[dict], dict]  # what else changes the model: the user's code or file hash, versions
    has_pretrained: Callable[[dict], bool] = lambda spec: False  # packaged weights that load offline


def _sources() -> dict[str, ModelSource]:
    from pipeline.models.sources import files, module_object, package, python_entry, registry

    return {s.name: s for s in (registry.SOURCE, python_entry.SOURCE, package.SOURCE, files.ONNX, files.TFLITE,
                                module_object.SOURCE)}


SOURCE_NAMES = ("registry", "python", "package", "onnx", "tflite", "object")


def source(name: str) -> ModelSource:
    return _sources()[name]


USES = {"registry": ("arch", "settings"), "python": ("entry", "settings"), "package": ("package", "arch", "settings"),
        "onnx": ("path",), "tflite": ("path",), "object": ("path",)}


def check(table: dict, recipe_path: Path) -> dict:
    """The model spec of a validated [model] table (raises ConfigError naming the key)."""
    kind = table["source"]
    for key in ("arch", "package", "entry", "path", "settings"):
        if table[key] and key not in USES[kind]:
            raise ConfigError(recipe_path, f"model.{key}", f"not used with model.source = '{kind}' (it takes "
                              f"{', '.join('model.' + k for k in USES[kind])}); remove it")
    return source(kind).check(table, recipe_path)


def is_pytorch(spec: dict) -> bool:
    """True when the source builds a PyTorch module (train, prune, quantize and to_executorch need one)."""
    return source(spec["source"]).build is not None


def build(spec: dict, pretrained: bool = False) -> nn.Module:
    """Build the module a model spec names, in eval mode; a builder that fails is one line naming it."""
    builder = source(spec["source"]).build
    if builder is None:
        raise ValueError(f"model.source = {spec['source']!r} is a file, not a PyTorch module")
    try:
        model = builder(spec, pretrained)
    except UserError:
        raise
    except TypeError as exc:
        key = _unexpected_keyword(exc)
        if key is not None:
            raise ConfigError(spec.get("recipe", "recipe"), f"model.settings.{key}",
                              f"{describe(spec)} takes no setting '{shown(key)}'") from None
        raise _builder_error(spec, exc) from None
    except Exception as exc:  # the user's factory may raise anything
        raise _builder_error(spec, exc) from None
    if not isinstance(model, nn.Module):
        raise UserError(f"{describe(spec)} returned {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def fingerprint(spec: dict) -> dict:
    return source(spec["source"]).fingerprint(spec)


def describe(spec: dict) -> str:
    """How a user would name the model: 'registry arch resnet_small', 'my_net.py:build', 'geffnet mixnet_s'."""
    kind = spec["source"]
    if kind == "python":
        return f"model.entry {spec['entry_text']!r}"
    if kind == "package":
        return f"{spec['package']} architecture {spec['arch']!r}"
    if kind in ("onnx", "tflite"):
        return f"{kind} file {spec['path']}"
    if kind == "object":
        return f"the module given to the Python API ({Path(spec['path']).stem[:12]})"
    return f"architecture {spec['arch']!r}"


def _unexpected_keyword(exc: TypeError) -> str | None:
    text = str(exc)
    marker = "unexpected keyword argument '"
    if marker in text:
        return text.split(marker, 1)[1].split("'", 1)[0]
    return None


def _builder_error(spec: dict, exc: Exception) -> UserError:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return UserError(f"{spec.get('recipe', 'recipe')}: model: building {describe(spec)} failed: "
                     f"{type(exc).__name__}: {first}")

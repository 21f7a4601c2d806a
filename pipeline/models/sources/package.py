"""source = "package": architectures a PyPI package ships. `package = "geffnet"`, `arch = "mobilenetv3_small_100"`.

geffnet (gen-efficientnet-pytorch) builds MobileNetV2/V3, MnasNet, FBNet, MixNet and EfficientNet(-Lite) with
random weights; its pretrained weights download from the internet at run time, which cannot work offline, so
`weights.source = "pretrained"` is refused for it. Models are built in geffnet's exportable, no-JIT mode (plain
activations and static padding that ONNX, TFLite and ExecuTorch take).
"""

from __future__ import annotations

import difflib
from importlib import metadata
from pathlib import Path

import torch.nn as nn

from pipeline.core.errors import ConfigError, UserError
from pipeline.models.sources import ModelSource

PACKAGES = ("geffnet",)


def _geffnet():
    try:
        import geffnet
    except ImportError:
        raise UserError("model.package 'geffnet' is not installed (run `make setup`)") from None
    return geffnet


def architectures(package: str) -> list[str]:
    """The builder names a supported package offers."""
    geffnet = _geffnet()
    from geffnet import gen_efficientnet, mobilenetv3

    names = set(gen_efficientnet.__all__) | set(mobilenetv3.__all__)
    return sorted(n for n in names if n[0].islower() and callable(getattr(geffnet, n, None)))


def check(table: dict, recipe_path: Path) -> dict:
    package, arch = table["package"], table["arch"]
    if package not in PACKAGES:
        raise ConfigError(recipe_path, "model.package", f"{package!r} is not one of {', '.join(map(repr, PACKAGES))}"
                          " (for another package, write a builder and use model.source = 'python')")
    known = architectures(package)
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3)
        tip = f"did you mean {', '.join(map(repr, close))}?" if close else f"e.g. {', '.join(known[:6])}"
        raise ConfigError(recipe_path, "model.arch", f"{package} has no architecture {arch!r} ({tip})")
    settings = dict(table["settings"])
    if "pretrained" in settings:
        raise ConfigError(recipe_path, "model.settings.pretrained", "weights are chosen by weights.source")
    return {"source": "package", "package": package, "arch": arch, "settings": settings, "recipe": str(recipe_path)}


def build(spec: dict, pretrained: bool) -> nn.Module:
    geffnet = _geffnet()
    from geffnet.config import set_exportable, set_no_jit

    with set_exportable(True), set_no_jit(True):
        return geffnet.create_model(spec["arch"], pretrained=False, **spec["settings"])


def fingerprint(spec: dict) -> dict:
    return {"package_version": metadata.version(spec["package"])}


SOURCE = ModelSource("package", check, build, fingerprint)

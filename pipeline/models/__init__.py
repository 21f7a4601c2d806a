"""Model registry: architecture name -> builder. Builders take keyword settings from the recipe's [model] table."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from pipeline.models.efficientnet_lite import efficientnet_lite0
from pipeline.models.mobilenet_v2 import mobilenet_v2_small
from pipeline.models.resnet import resnet_small

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v2_small": mobilenet_v2_small,
    "resnet_small": resnet_small,
    "efficientnet_lite0": efficientnet_lite0,
}


def build(arch: str, **settings) -> nn.Module:
    """Build a registered architecture with its settings (raises KeyError for an unknown name)."""
    return ARCHITECTURES[arch](**settings)

"""A small MobileNetV2-style network: inverted residual blocks (depthwise conv, residual add, BatchNorm, ReLU6)."""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

# (expansion, output channels, repeats, first stride) per stage, sized for 28x28 inputs.
DEFAULT_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (4, 24, 2, 2),
    (4, 40, 2, 2),
    (4, 64, 2, 1),
)


def conv_bn_act(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection, with a residual add when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_act(cin, hidden, k=1))
        layers.append(conv_bn_act(hidden, hidden, k=3, stride=stride, groups=hidden))
        layers.append(conv_bn_act(hidden, cout, k=1, act=False))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2Small(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        stem_channels: int = 16,
        stem_stride: int = 1,
        stages: tuple[tuple[int, int, int, int], ...] = DEFAULT_STAGES,
        head_channels: int = 128,
        dropout: float = 0.1,
    ):
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(in_channels, stem_channels, stride=stem_stride)]
        cin = stem_channels
        for expansion, cout, repeats, stride in stages:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        layers.append(conv_bn_act(cin, head_channels, k=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def mobilenet_v2_small(**settings) -> nn.Module:
    """MobileNetV2-style classifier; `stages` is a list of [expansion, channels, repeats, stride]."""
    if "stages" in settings:
        settings["stages"] = tuple(tuple(int(v) for v in s) for s in settings["stages"])
    return MobileNetV2Small(**settings)


# the settings it takes are the class's: `init` fills num_classes and in_channels, recipes' typos are refused by name
mobilenet_v2_small.__signature__ = inspect.signature(MobileNetV2Small)

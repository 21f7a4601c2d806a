"""A classifier with two inputs and two outputs: a small CNN over the picture (batch x 1 x 28 x 28), a dense layer
over its measured profile (batch x 18), joined before two heads: class scores (batch x 10) and an embedding
(batch x 16) for search by similarity."""

from __future__ import annotations

import torch
import torch.nn as nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class PictureProfileNet(nn.Module):
    def __init__(self, num_classes: int = 10, profile: int = 18, width: int = 16, embedding: int = 16):
        super().__init__()
        self.picture = nn.Sequential(_block(1, width), nn.MaxPool2d(2), _block(width, 2 * width), nn.MaxPool2d(2),
                                     _block(2 * width, 4 * width), _block(4 * width, 4 * width),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.profile = nn.Sequential(nn.Linear(profile, 32), nn.ReLU())
        self.classifier = nn.Linear(4 * width + 32, num_classes)
        self.embed = nn.Linear(4 * width + 32, embedding)

    def forward(self, picture: torch.Tensor, profile: torch.Tensor) -> dict[str, torch.Tensor]:
        z = torch.cat([self.picture(picture), self.profile(profile)], 1)
        return {"scores": self.classifier(z), "embedding": self.embed(z)}


def build(num_classes: int = 10, profile: int = 18, width: int = 16, embedding: int = 16) -> nn.Module:
    return PictureProfileNet(num_classes, profile, width, embedding)

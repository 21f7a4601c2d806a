"""A small keyword-spotting network over MFCC frames: 1-D convolutions along time, then class scores.

`build` makes the one-input form (mfcc: batch x 13 x 32 frames); `build_two_inputs` also takes each recording's
frame count (batch x 1), joined to the pooled features before the classifier, and returns class scores and an
embedding: the form the pipeline's multi-input, multi-output path is shown with.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm1d(cout), nn.ReLU())


class KeywordNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 13, width: int = 64):
        super().__init__()
        self.features = nn.Sequential(_block(in_channels, width), _block(width, width), nn.MaxPool1d(2),
                                      _block(width, 2 * width), _block(2 * width, 2 * width),
                                      nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(mfcc))


class KeywordNetTwoInputs(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 13, width: int = 64, embedding: int = 16):
        super().__init__()
        self.features = KeywordNet(num_classes, in_channels, width).features
        self.length = nn.Linear(1, 8)
        self.embed = nn.Linear(2 * width + 8, embedding)
        self.classifier = nn.Linear(2 * width + 8, num_classes)

    def forward(self, mfcc: torch.Tensor, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        z = torch.cat([self.features(mfcc), torch.relu(self.length(frames / 32.0))], 1)
        return {"scores": self.classifier(z), "embedding": self.embed(z)}


def build(num_classes: int = 10, in_channels: int = 13, width: int = 64) -> nn.Module:
    return KeywordNet(num_classes, in_channels, width)


def build_two_inputs(num_classes: int = 10, in_channels: int = 13, width: int = 64, embedding: int = 16) -> nn.Module:
    return KeywordNetTwoInputs(num_classes, in_channels, width, embedding)

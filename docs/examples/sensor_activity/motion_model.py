"""A small activity classifier over a watch's motion sensors: 1-D convolutions along time over the 6 channels
(3-D accelerometer, 3-D gyroscope) of a 5 s window, then class scores (batch x 6 x 50 -> batch x 4)."""

from __future__ import annotations

import torch
import torch.nn as nn


def _block(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm1d(cout),
                         nn.ReLU())


class MotionNet(nn.Module):
    def __init__(self, num_classes: int = 4, channels: int = 6, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(_block(channels, width, 5), _block(width, width, 5), nn.MaxPool1d(2),
                                      _block(width, 2 * width, 3), _block(2 * width, 2 * width, 3),
                                      nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(motion))


def build(num_classes: int = 4, channels: int = 6, width: int = 32) -> nn.Module:
    return MotionNet(num_classes, channels, width)

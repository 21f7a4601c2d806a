"""Small networks with every structure pruning must keep consistent: residual adds, depthwise and grouped
convolutions, channel shuffle, concatenation and squeeze-excitation."""

from __future__ import annotations

import torch
import torch.nn as nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(c, reduced, 1)
        self.expand = nn.Conv2d(reduced, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(s))))


class ZooNet(nn.Module):
    """stem -> residual depthwise block with SE -> grouped conv + channel shuffle -> two branches concatenated."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                nn.Conv2d(32, 32, 1, bias=False), nn.BatchNorm2d(32))
        self.se = SqueezeExcite(32, 8)
        self.grouped = nn.Sequential(nn.Conv2d(32, 64, 3, 1, 1, groups=4, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.branch_a = nn.Sequential(nn.Conv2d(64, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.branch_b = nn.Sequential(nn.Conv2d(64, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.Upsample(scale_factor=2))
        self.head = nn.Sequential(nn.Conv2d(64, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.classifier = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.se(self.dw(x)))
        x = channel_shuffle(self.grouped(x), 4)
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        return self.classifier(self.head(x).mean((2, 3)))


def calibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> nn.Module:
    """Give BatchNorm real running statistics (random-init mobile nets otherwise output near-constant logits)."""
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    return model.eval()

"""A user's own network, written for the tests as a user would write it: squeeze-excitation, a channel split into
two branches concatenated again, a channel shuffle, and a flatten with `x.view(x.size(0), -1)`.

The split/concat + shuffle is what Torch-Pruning's dependency graph cannot follow (its importance raises an
IndexError); the pipeline must leave that group unpruned and prune the rest.
"""

import torch
import torch.nn as nn
from blocks import SqueezeExcite  # a sibling module, as in a user's repo


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleSplitNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        half = width // 2
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False), nn.BatchNorm2d(half),
                                    nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU())
        self.se = SqueezeExcite(width, 8)
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * width),
                                  nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(2 * width, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        kept, worked = x.chunk(2, dim=1)
        x = channel_shuffle(torch.cat([kept, self.branch(worked)], dim=1), 2)
        x = self.head(self.down(self.se(x)))
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.classifier(x.view(x.size(0), -1))


def build(num_classes: int = 10, in_channels: int = 1, width: int = 32) -> nn.Module:
    return ShuffleSplitNet(num_classes, in_channels, width)


def broken(num_classes: int = 10) -> nn.Module:
    raise ValueError("this factory always fails (a refusal test)")


def not_a_module(num_classes: int = 10):
    return [nn.Linear(4, num_classes)]


def wants_rgb(num_classes: int = 10) -> nn.Module:
    """A model for 3-channel input, which Fashion-MNIST's grey pictures do not fit."""
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

"""MAC counting: subclassed layers count, and the PyTorch-hook count agrees with the ONNX graph's shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.compression.macs import count_macs, count_onnx_macs
from pipeline.compression.pruning import count
from pipeline.converters.onnx_export import export


class PaddedConv(nn.Conv2d):
    """A conv subclass that pads in forward, like EfficientNet-Lite's Conv2dDynamicSamePadding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Scaled(nn.Linear):
    pass


def _subclassed() -> nn.Module:
    return nn.Sequential(PaddedConv(3, 16, 3), nn.ReLU(), PaddedConv(16, 16, 3, groups=16), nn.Conv2d(16, 8, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), Scaled(8, 10))


def test_subclassed_conv_and_linear_layers_are_counted():
    # by hand: 16x8x8 outputs x 3x3x3, depthwise 16x8x8 x 1x3x3, pointwise 8x8x8 x 16, linear 10 x 8
    expected = 16 * 64 * 27 + 16 * 64 * 9 + 8 * 64 * 16 + 10 * 8
    got = count_macs(_subclassed(), torch.zeros(1, 3, 8, 8))
    assert got["macs"] == expected
    assert got["params"] == sum(p.numel() for p in _subclassed().parameters())


def test_pruning_counts_with_the_hook_counter():
    model, x = _subclassed(), torch.zeros(1, 3, 8, 8)
    assert count(model, x) == count_macs(model, x)


def test_counting_leaves_batch_norm_statistics_and_training_mode_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    count_macs(model, torch.randn(2, 3, 8, 8))
    assert model.training and torch.equal(model[1].running_mean, torch.zeros(4))


def test_onnx_count_agrees_on_the_subclassed_model(tmp_path):
    path = tmp_path / "m.onnx"
    model, x = _subclassed().eval(), torch.zeros(1, 3, 8, 8)
    export(model, x, path, 20)
    assert count_onnx_macs(path) == count_macs(model, x)["macs"]


def _agree(model: nn.Module, x: torch.Tensor, path) -> int:
    export(model, x, path, 20)
    macs = count_macs(model, x)["macs"]
    assert count_onnx_macs(path) == macs
    return macs


def test_both_counters_agree_on_the_default_model(tmp_path):
    from pipeline.models import build

    assert _agree(build("mobilenet_v2_small").eval(), torch.zeros(1, 1, 28, 28), tmp_path / "m.onnx") > 1e6


def test_both_counters_agree_on_efficientnet_lite0(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    from pipeline.models.efficientnet_lite import efficientnet_lite0

    macs = _agree(efficientnet_lite0(pretrained=False).eval(), torch.zeros(1, 3, 224, 224), tmp_path / "e.onnx")
    assert math.isclose(macs, 385.2e6, rel_tol=0.01)  # TFLite's converter estimates 388.7M

"""Give a freshly built model the channel widths of a pruned state_dict, so pruned models reload weights_only.

Pruning removes channels; the saved state_dict is then narrower than the architecture's builder makes it. Instead of
pickling the pruned module (code in the file), we rebuild the architecture and shrink each layer to the saved shapes.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _empty_like(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(torch.empty_like(t))


def _fit_conv(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    out_c, in_per_group = weight.shape[:2]
    if conv.groups > 1 and conv.groups == conv.in_channels:  # depthwise (possibly with a channel multiplier)
        multiplier = conv.out_channels // conv.in_channels
        conv.groups = out_c // multiplier
        conv.in_channels = conv.groups * in_per_group
    else:  # dense or grouped: the group count stays, each group got narrower
        conv.in_channels = in_per_group * conv.groups
    conv.out_channels = out_c
    conv.weight = _empty_like(weight)
    if bias is not None:
        conv.bias = _empty_like(bias)


def _fit_bn(bn: nn.modules.batchnorm._BatchNorm, state: dict, prefix: str) -> None:
    n = state[prefix + "weight"].shape[0] if bn.affine else state[prefix + "running_mean"].shape[0]
    bn.num_features = n
    if bn.affine:
        bn.weight = _empty_like(state[prefix + "weight"])
        bn.bias = _empty_like(state[prefix + "bias"])
    if bn.track_running_stats:
        bn.running_mean = torch.zeros(n)
        bn.running_var = torch.ones(n)


def fit_to_state_dict(model: nn.Module, state: dict) -> nn.Module:
    """Shrink convolution (1-D, 2-D, 3-D), BatchNorm and linear layers of `model` to the shapes in `state` (in place);
    returns `model`."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and prefix + "weight" in state:
            _fit_conv(module, state[prefix + "weight"], state.get(prefix + "bias"))
        elif (isinstance(module, nn.modules.batchnorm._BatchNorm)
              and (prefix + "running_mean" in state or prefix + "weight" in state)):
            _fit_bn(module, state, prefix)
        elif isinstance(module, nn.Linear) and prefix + "weight" in state:
            w = state[prefix + "weight"]
            module.out_features, module.in_features = w.shape
            module.weight = _empty_like(w)
            if module.bias is not None:
                module.bias = _empty_like(state[prefix + "bias"])
    return model

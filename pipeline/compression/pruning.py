"""Structured pruning with Torch-Pruning's dependency graph: channels are physically removed, and residual adds,
depthwise/grouped convolutions, concatenation and squeeze-excitation stay consistent because DepGraph prunes every
coupled layer together.

Example::

    >>> import torch
    >>> from pipeline.models import build
    >>> m = build("mobilenet_v2_small")
    >>> pruned, rep = prune(m, torch.zeros(1, 1, 28, 28), PruneSettings(ratio=0.5, importance="l1"))
    >>> rep["after"]["macs"] < rep["before"]["macs"]
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

# The pruning ratio the MAC-target mode can reach at most, and how finely it walks towards it.
MAX_RATIO = 0.9
MAC_MODE_STEPS = 36


@dataclass(frozen=True)
class PruneSettings:
    ratio: float = 0.0  # channel ratio to remove; 0 means: use macs_factor
    macs_factor: float = 2.0  # prune until MACs are this many times fewer
    importance: str = "l2"  # l1 | l2 | taylor | bn_scale
    global_pruning: bool = False
    round_to: int = 8  # keep widths a multiple of this (SIMD-friendly)
    ignore: tuple[str, ...] = ("classifier",)  # module names never pruned (their outputs stay)
    iterative_steps: int = 1  # ratio mode: reach the ratio in this many steps


def importance(name: str) -> tp.importance.Importance:
    """The importance criterion: a callable from a dependency group to per-channel scores."""
    if name == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.TaylorImportance()
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    raise ValueError(f"unknown importance {name!r}: use l1, l2, taylor or bn_scale")


def count(model: nn.Module, example: torch.Tensor) -> dict:
    """MACs (every convolution and linear layer, subclasses included) and parameters of `model` on `example`."""
    # Torch-Pruning's counter matches exact layer types and skips subclasses (EfficientNet-Lite's padded conv).
    from pipeline.compression.macs import count_macs

    return count_macs(model, example)


def layer_widths(model: nn.Module) -> dict[str, dict]:
    """Per prunable layer: output channels (or features) and parameter count."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out[name] = {"out": m.out_channels, "params": sum(p.numel() for p in m.parameters())}
        elif isinstance(m, nn.Linear):
            out[name] = {"out": m.out_features, "params": sum(p.numel() for p in m.parameters())}
    return out


def _ignored(model: nn.Module, names: tuple[str, ...]) -> list[nn.Module]:
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise KeyError(f"no module named {missing[0]!r} to keep (known: {', '.join(list(modules)[1:8])}, ...)")
    return [modules[n] for n in names]


def _taylor_grads(model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None) -> None:
    if batches is None:
        raise ValueError("taylor importance needs labelled batches for gradients")
    model.zero_grad()
    for x, y in batches:
        F.cross_entropy(model(x), y).backward()


def prune(
    model: nn.Module,
    example: torch.Tensor,
    settings: PruneSettings,
    batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None,
) -> tuple[nn.Module, dict]:
    """Prune `model` in place; returns it with a report of MACs and parameters before/after, total and per layer.

    `batches` yields (images, labels) for gradient-based importance (taylor).
    """
    model.eval()
    before, widths_before = count(model, example), layer_widths(model)
    by_ratio = settings.ratio > 0
    steps = settings.iterative_steps if by_ratio else MAC_MODE_STEPS
    pruner = tp.pruner.MetaPruner(
        model, example, importance=importance(settings.importance), global_pruning=settings.global_pruning,
        pruning_ratio=settings.ratio if by_ratio else MAX_RATIO, iterative_steps=steps,
        round_to=settings.round_to or None, ignored_layers=_ignored(model, settings.ignore),
    )
    target_macs = before["macs"] / settings.macs_factor
    done = 0
    for _ in range(steps):
        if not by_ratio and count(model, example)["macs"] <= target_macs:
            break
        if settings.importance == "taylor":
            _taylor_grads(model, batches() if batches else None)
        pruner.step()
        done += 1
    model.zero_grad(set_to_none=True)
    after, widths_after = count(model, example), layer_widths(model)
    layers = [  # a list keeps the model's order (JSON objects get their keys sorted)
        {"name": name, "out_before": w["out"], "out_after": widths_after[name]["out"], "params_before": w["params"],
         "params_after": widths_after[name]["params"]}
        for name, w in widths_before.items() if name in widths_after
    ]
    report = {
        "before": before,
        "after": after,
        "macs_reduction": before["macs"] / max(after["macs"], 1),
        "params_reduction": before["params"] / max(after["params"], 1),
        "steps": done,
        "target": {"ratio": settings.ratio} if by_ratio else {"macs_factor": settings.macs_factor},
        "reached": by_ratio or after["macs"] <= target_macs,
        "layers": layers,
    }
    return model, report

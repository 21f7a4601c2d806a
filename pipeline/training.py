"""Supervised training loop for classifiers on in-memory tensors (optionally distilled from a teacher)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline import distributed
from pipeline.progress import progress


@dataclass(frozen=True)
class TrainSettings:
    epochs: float = 3.0  # fractional epochs allowed (a reduced recipe trains on part of an epoch)
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 4e-5
    momentum: float = 0.9
    label_smoothing: float = 0.0
    schedule: str = "onecycle"  # onecycle | cosine | constant
    flip: bool = True  # random horizontal flips
    seed: int = 0
    max_train_samples: int = 0  # 0: all


@dataclass(frozen=True)
class Distillation:
    teacher: nn.Module
    temperature: float = 4.0
    weight: float = 0.7  # share of the loss that comes from the teacher


def _lr_at(step: int, total: int, peak: float, schedule: str) -> float:
    if schedule == "constant":
        return peak
    frac = step / max(total, 1)
    if schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * frac))
    warm = 0.15  # onecycle: linear warm-up then cosine down to 1% of peak
    if frac < warm:
        return peak * (0.1 + 0.9 * frac / warm)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (frac - warm) / (1 - warm))))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target loss, scaled by T^2 so its gradient size does not depend on the temperature."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1),
                    reduction="batchmean") * t * t


def train(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: TrainSettings,
    *,
    distill: Distillation | None = None,
    desc: str = "train",
    modes: tuple[Callable[[nn.Module], object], Callable[[nn.Module], object]] | None = None,
) -> dict:
    """Train `model` in place with SGD+Nesterov; returns a summary (steps, seconds, last loss).

    Under torchrun (an initialised process group) the model is wrapped in DistributedDataParallel: every rank
    shuffles with the same seed and takes its own slice of each global batch, and gradients are averaged, so the
    schedule and the effective batch size match a single-process run. `modes` replaces (train, eval) mode switches
    for exported graphs, which do not support .train()/.eval().
    """
    to_train, to_eval = modes or (lambda m: m.train(), lambda m: m.eval())
    gen = torch.Generator().manual_seed(settings.seed)
    n = len(images) if not settings.max_train_samples else min(len(images), settings.max_train_samples)
    rank, world = distributed.rank_and_world()
    per_rank_batch = max(1, settings.batch_size // world)
    forward = distributed.wrap(model)
    steps_per_epoch = max(1, n // settings.batch_size)
    total = max(1, int(round(settings.epochs * steps_per_epoch)))
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum, nesterov=True,
                          weight_decay=settings.weight_decay)
    if distill is not None:
        distill.teacher.eval()
    to_train(model)
    start, step, loss_value = time.perf_counter(), 0, float("nan")
    with progress(total=total, desc=desc, unit="step") as bar:
        while step < total:
            order = torch.randperm(n, generator=gen)
            for b in range(steps_per_epoch):
                if step >= total:
                    break
                idx = order[b * settings.batch_size : (b + 1) * settings.batch_size]
                idx = idx[rank * per_rank_batch : (rank + 1) * per_rank_batch]
                x, y = images[idx], labels[idx]
                if settings.flip:
                    flip = torch.rand(len(x), generator=gen) < 0.5
                    x = torch.where(flip[:, None, None, None], x.flip(3), x)
                for group in opt.param_groups:
                    group["lr"] = _lr_at(step, total, settings.lr, settings.schedule)
                logits = forward(x)
                loss = F.cross_entropy(logits, y, label_smoothing=settings.label_smoothing)
                if distill is not None:
                    with torch.no_grad():
                        teacher_logits = distill.teacher(x)
                    kd = distillation_loss(logits, teacher_logits, distill.temperature)
                    loss = (1 - distill.weight) * loss + distill.weight * kd
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                loss_value = loss.item()
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
    to_eval(model)
    return {"steps": total, "seconds": round(time.perf_counter() - start, 2), "final_loss": round(loss_value, 4)}


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Eval-mode logits for all images, batched (exported graphs are already in eval mode: they refuse .eval())."""
    if not isinstance(model, torch.fx.GraphModule):
        model.eval()
    outs = [model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return torch.cat(outs).numpy()

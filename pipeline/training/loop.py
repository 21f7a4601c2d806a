"""Supervised training loop on in-memory tensors (optionally distilled from a teacher).

A model takes one or more input tensors and returns one or more outputs (pipeline/artifacts/model_io.py); the loss
is on its first output: cross-entropy against integer class ids, mean squared error against float targets of the
output's shape. Distillation matches the teacher's first output the same way (soft targets for class scores, MSE
otherwise).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.artifacts.model_io import as_list, flat_outputs
from pipeline.core.progress import progress
from pipeline.training import distributed, thread_tuner
from pipeline.training.thread_tuner import ThreadTuner


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


def classification(labels: torch.Tensor | np.ndarray) -> bool:
    """Integer class ids, one per sample (the other targets are regressed)."""
    return labels.ndim == 1 and not labels.dtype.is_floating_point if isinstance(labels, torch.Tensor) else (
        labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer))


def task_loss(out: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy on class ids, else mean squared error against targets of the output's shape."""
    if classification(y):
        return F.cross_entropy(out, y, label_smoothing=label_smoothing)
    return F.mse_loss(out, y.reshape(out.shape).to(out.dtype))


def first_output(model: nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
    return flat_outputs(model(*inputs))[1][0]


def _layout(model: nn.Module, images: torch.Tensor | list[torch.Tensor]) -> torch.memory_format:
    """channels_last for image batches: PyTorch's CPU convolutions train the default model 1.8x faster per step and
    predict 1.4x faster in it (CPU time, one thread, measured side by side). Exported graphs, other inputs (models
    with several, sequences) and models that cannot take it (a `.view()` after a convolution) keep the default."""
    inputs = as_list(images)
    if isinstance(model, torch.fx.GraphModule) or len(inputs) != 1 or inputs[0].dim() != 4:
        return torch.contiguous_format
    images = inputs[0]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval().to(memory_format=torch.channels_last)
            model(images[:2].contiguous(memory_format=torch.channels_last))
        return torch.channels_last
    except Exception:  # noqa: BLE001 - any failure means: this model keeps its layout
        return torch.contiguous_format
    finally:
        model.to(memory_format=torch.contiguous_format).train(was_training)


def train(
    model: nn.Module,
    images: torch.Tensor | list[torch.Tensor],
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
    inputs = as_list(images)
    layout = _layout(model, inputs)
    model.to(memory_format=layout)
    if distill is not None:
        distill.teacher.to(memory_format=layout)
    gen = torch.Generator().manual_seed(settings.seed)
    n = len(inputs[0]) if not settings.max_train_samples else min(len(inputs[0]), settings.max_train_samples)
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
    threads_before = torch.get_num_threads()
    tuner = ThreadTuner() if world == 1 else None
    with progress(total=total, desc=desc, unit="step") as bar:
        while step < total:
            order = torch.randperm(n, generator=gen)
            for b in range(steps_per_epoch):
                if step >= total:
                    break
                idx = order[b * settings.batch_size : (b + 1) * settings.batch_size]
                idx = idx[rank * per_rank_batch : (rank + 1) * per_rank_batch]
                began = time.perf_counter()
                xs, y = [t[idx] for t in inputs], labels[idx]
                if layout is torch.channels_last:
                    xs = [xs[0].contiguous(memory_format=layout)]
                if settings.flip and len(xs) == 1 and xs[0].dim() == 4:  # pictures only
                    flip = torch.rand(len(y), generator=gen) < 0.5
                    xs = [torch.where(flip[:, None, None, None], xs[0].flip(3), xs[0])]
                for group in opt.param_groups:
                    group["lr"] = _lr_at(step, total, settings.lr, settings.schedule)
                logits = first_output(forward, xs)
                loss = task_loss(logits, y, settings.label_smoothing)
                if distill is not None:
                    with torch.no_grad():
                        teacher_logits = first_output(distill.teacher, xs)
                    kd = (distillation_loss(logits, teacher_logits, distill.temperature) if classification(y)
                          else F.mse_loss(logits, teacher_logits))
                    loss = (1 - distill.weight) * loss + distill.weight * kd
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                loss_value = loss.item()
                if tuner is not None:
                    tuner.step_done(time.perf_counter() - began)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
    torch.set_num_threads(threads_before)
    to_eval(model)
    model.to(memory_format=torch.contiguous_format)
    if distill is not None:
        distill.teacher.to(memory_format=torch.contiguous_format)
    summary = {"steps": total, "seconds": round(time.perf_counter() - start, 2), "final_loss": round(loss_value, 4)}
    if tuner is not None and thread_tuner.enabled():
        summary.update(tuner.summary())
    return summary


# Prediction batch: activations of 64 pictures stay in the CPU's caches; at 512-1024 the default model predicted
# 2.5x slower per picture, and the int8 PT2E reference (every activation quantized and dequantized) 3-4x slower.
PREDICT_BATCH = 64


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor | list[torch.Tensor],
            batch_size: int = PREDICT_BATCH) -> list[np.ndarray]:
    """Eval-mode outputs (every output, flattened) for all samples, batched (exported graphs are already in eval
    mode: they refuse .eval()).

    A plain module on pictures runs in channels_last (1.4x faster here) and is handed back as it came."""
    inputs = as_list(images)
    layout = _layout(model, inputs)
    if not isinstance(model, torch.fx.GraphModule):
        model.eval().to(memory_format=layout)
    try:
        outs = []
        for i in range(0, len(inputs[0]), batch_size):
            xs = [t[i : i + batch_size] for t in inputs]
            if layout is torch.channels_last:
                xs = [xs[0].contiguous(memory_format=layout)]
            outs.append(flat_outputs(model(*xs))[1])
    finally:
        if layout is torch.channels_last:
            model.to(memory_format=torch.contiguous_format)
    return [torch.cat([o[k] for o in outs]).numpy() for k in range(len(outs[0]))]


def predict_logits(model: nn.Module, images: torch.Tensor | list[torch.Tensor],
                   batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """The first output (class scores for a classifier) of `predict`."""
    return predict(model, images, batch_size)[0]

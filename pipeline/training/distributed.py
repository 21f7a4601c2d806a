"""Multi-process training under torchrun: DistributedDataParallel with gloo on CPU, NCCL on GPU.

Outside torchrun everything here is a no-op, so the same training code serves one process and many. Only rank 0
writes artifacts (`is_writer`).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def init() -> None:
    """Join the process group torchrun describes in the environment (idempotent)."""
    if launched_by_torchrun() and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def is_writer() -> bool:
    return rank_and_world()[0] == 0


def wrap(model: nn.Module) -> nn.Module:
    """DistributedDataParallel around `model` when several processes train, else `model` itself."""
    if not active():
        return model
    return nn.parallel.DistributedDataParallel(model)


def barrier() -> None:
    if active():
        dist.barrier()

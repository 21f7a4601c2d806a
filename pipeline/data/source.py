"""The data source contract: one small record per kind of dataset, registered by name in pipeline/data/__init__.py.

A source validates its [data] table, says what it knows of the input spec (size, channels, normalisation), names
its classes, and loads a split as uint8 pictures. Pictures need not be at the model's size: the caller resizes them
with the reference preprocessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, N x H x W (grey) or N x H x W x C
    labels: np.ndarray | None  # int64 N, or None for unlabelled sets
    names: tuple[str, ...] = ()  # per-sample names where the set has them
    skipped: tuple[str, ...] = ()  # pictures that could not be read, with the reason
    read_seconds: float = 0.0  # time spent decoding (0 when it came from the array cache)


@dataclass(frozen=True)
class DataSource:
    """One kind of dataset."""

    name: str
    check: Callable[[dict, Path], dict]  # [data] table, recipe file -> the table with absolute paths (ConfigError)
    # the input-spec keys this data knows: height, width, channels, mean, std (+ size_note: how the size was chosen)
    input_defaults: Callable[[dict], dict]
    labels: Callable[[dict], tuple[str, ...]]
    load: Callable[[dict, str, dict], Split]  # (table, "train" | "test", resolved input table) -> pictures
    has_train: bool = True  # False: evaluation pictures only (no training, fine-tuning or QAT)
    fingerprint: Callable[[dict], dict] = lambda table: {}  # what else identifies the data (folder contents)


def unchanged(table: dict, recipe_path: Path) -> dict:
    return table

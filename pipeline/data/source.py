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
    """One split of a dataset. Picture sources fill `images`; sources of other data (arrays, the user's loader) fill
    `inputs`, one array per model input in reference form (batch first, the dtype the model takes), and leave
    `images` empty (shape (0,))."""

    images: np.ndarray  # uint8, N x H x W (grey) or N x H x W x C
    labels: np.ndarray | None  # targets: int64 N class ids, or any array with N first; None for unlabelled sets
    names: tuple[str, ...] = ()  # per-sample names where the set has them
    skipped: tuple[str, ...] = ()  # pictures that could not be read, with the reason
    read_seconds: float = 0.0  # time spent decoding (0 when it came from the array cache)
    inputs: tuple[np.ndarray, ...] = ()  # model inputs of a source that is not pictures (may be memory-mapped)

    def __len__(self) -> int:
        return len(self.inputs[0]) if self.inputs else len(self.images)

    def head(self, n: int) -> Split:
        """The first `n` samples (all when n is 0 or more than there are)."""
        if not n or n >= len(self):
            return self
        return Split(self.images[:n], None if self.labels is None else self.labels[:n], self.names[:n],
                     self.skipped, self.read_seconds, tuple(a[:n] for a in self.inputs))


@dataclass(frozen=True)
class DataSource:
    """One kind of dataset."""

    name: str
    check: Callable[[dict, Path], dict]  # [data] table, recipe file -> the table with absolute paths (ConfigError)
    # the input-spec keys this data knows: height, width, channels, mean, std (+ size_note and size_rule: how the
    # size was chosen, for the log and for a recipe comment)
    input_defaults: Callable[[dict], dict]
    labels: Callable[[dict], tuple[str, ...]]
    load: Callable[[dict, str, dict], Split]  # (table, "train" | "test", resolved input table) -> pictures
    has_train: bool = True  # False: evaluation pictures only (no training, fine-tuning or QAT)
    fingerprint: Callable[[dict], dict] = lambda table: {}  # what else identifies the data (folder contents)
    keys: tuple[str, ...] = ()  # the [data] keys only some sources read (path, entry, train, val, inputs)


def unchanged(table: dict, recipe_path: Path) -> dict:
    return table

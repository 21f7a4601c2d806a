"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package (idx files, gzip)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.data.source import DataSource, Split, unchanged

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Per-channel statistics of the 60k training images (pixel/255), used by the default recipe's normalisation.
MEAN, STD = 0.2860, 0.3530


def read_idx(path: Path) -> np.ndarray:
    """Read one gzip'd idx file (the MNIST container format) into a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise UserError(f"{path}: not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split: str, root: Path = DEFAULT_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N x 28 x 28, labels int64 N) of the 'train' or 'test' split."""
    images_name, labels_name = FILES[split]
    images_path, labels_path = root / images_name, root / labels_name
    for p in (images_path, labels_path):
        if not p.exists():
            raise UserError(f"{p}: missing; install Debian's dataset-fashion-mnist (make setup does)")
    return read_idx(images_path), read_idx(labels_path).astype(np.int64)



def _split(table: dict, which: str, spec: dict) -> Split:
    return Split(*load(which))


SOURCE = DataSource("fashion-mnist", unchanged, lambda table: {"height": 28, "width": 28, "channels": 1, "mean": [MEAN],
                                                      "std": [STD]}, lambda table: LABELS, _split)

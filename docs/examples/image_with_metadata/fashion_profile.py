"""A user's data loader (dataset = "python") for a model with two inputs: Fashion-MNIST pictures (Debian's
dataset-fashion-mnist package: 60,000 training and 10,000 test pictures, 28x28 grey, 10 classes) and, beside each
picture, a small vector of measurements of it, the kind a phone app computes before it calls the model: mean
intensity, the fraction of inked pixels, the height and width of the inked box, and the mean ink of 7 horizontal and
7 vertical bands (18 values).

`load()` returns (train, val): iterables of ((picture 1x28x28, profile 18), class id) for the training pictures and the
test pictures. TRAIN_SAMPLES caps the training set (the first pictures of the file).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

FOLDER = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.286, 0.353  # Fashion-MNIST's pixel statistics (training set, pixels in [0, 1])
BANDS = 7
INK = 0.2
TRAIN_SAMPLES = 60_000


def _idx(name: str) -> np.ndarray:
    path = FOLDER / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install Debian's dataset-fashion-mnist (make setup)")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def profiles(pixels: np.ndarray) -> np.ndarray:
    """N x 28 x 28 pixels in [0, 1] -> N x 18 measurements (float32)."""
    ink = pixels > INK
    rows, cols = ink.any(2), ink.any(1)
    height = rows.sum(1) / pixels.shape[1]
    width = cols.sum(1) / pixels.shape[2]
    n, h, w = pixels.shape
    row_bands = pixels.reshape(n, BANDS, h // BANDS, w).mean((2, 3))
    col_bands = pixels.reshape(n, h, BANDS, w // BANDS).mean((1, 3))
    head = np.stack([pixels.mean((1, 2)), ink.mean((1, 2)), height, width], 1)
    return np.concatenate([head, row_bands, col_bands], 1).astype(np.float32)


def split(prefix: str, limit: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pictures N x 1 x 28 x 28 standardised, profiles N x 18, labels N) of 'train' or 't10k'."""
    pixels = _idx(f"{prefix}-images-idx3-ubyte.gz")[: limit or None].astype(np.float32) / 255.0
    labels = _idx(f"{prefix}-labels-idx1-ubyte.gz")[: limit or None].astype(np.int64)
    pictures = ((pixels - MEAN) / STD)[:, None]
    return pictures, profiles(pixels), labels


def load():
    def pairs(prefix: str, limit: int = 0):
        pictures, measured, labels = split(prefix, limit)
        return (((pictures[i], measured[i]), int(labels[i])) for i in range(len(labels)))

    return pairs("train", TRAIN_SAMPLES), pairs("t10k")

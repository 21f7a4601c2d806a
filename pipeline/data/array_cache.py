"""Decoded datasets kept once as arrays under the build cache (build/cache/data/<key>/), memory-mapped on reuse.

The runner points this at its build folder; without that (a library caller) nothing is cached, and `entry` (files
a source must have on disk: decompressed .npz members, a seeded split's copy) makes its folders in a temporary folder
of this process, removed when it exits. An entry appears atomically (written in a temporary folder, then renamed), so
a crash never leaves half a cache entry.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

_root: Path | None = None
_scratch: Path | None = None  # entries of a process that has no root


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


def _entries_root() -> Path:
    global _scratch
    if _root is not None:
        return _root
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="pipeline-arrays-"))
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


def entry(key: str, make: Callable[[Path], None], root: Path | None = None) -> Path:
    """The folder of entry `key`, made once by `make(folder)` into a temporary folder that is then renamed (under
    `root` when given: a caller that writes before a run has set the root, such as the Python API)."""
    root = root or _entries_root()
    final = root / key
    if (final / ".done").is_file():
        return final
    tmp = root / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        make(tmp)
        (tmp / ".done").write_text("")
        if final.exists():  # another process finished it first, or a damaged entry without .done: replace that
            if (final / ".done").is_file():
                return final
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def free_bytes() -> int:
    """Free space where entries are written."""
    return shutil.disk_usage(_entries_root()).free

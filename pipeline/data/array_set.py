"""A data set of arrays (dataset = "arrays" or "python"): per split, the model's inputs by name and the targets,
checked as a whole, split by seed, described for the [input] table and loaded memory-mapped.

Targets are integer class ids (classification: one id per sample, 0..K-1) or floating-point values of any shape
(regression). A split is refused in one line, naming the array, when: it has no input or no sample; an array's
length differs from the others' (labels of a different length than the inputs); an array holds NaN or infinity (its
first index); class ids are negative or past the class names; train and evaluation splits differ in their inputs'
names, per-sample shapes or dtypes.

A seeded split (one set, no given train/evaluation parts) is written once into the array cache, each array copied
block by block through a private map whose pages are dropped after each block, then memory-mapped like given splits:
no split is ever read into memory as a whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts.tensors import TensorSpec
from pipeline.core.errors import DataError, shown
from pipeline.data import array_cache
from pipeline.data.array_files import BLOCK_BYTES, ArrayRef, check_finite, drop, mapped, npy_file, read_all
from pipeline.data.source import Split

NUMERIC = "biuf"
NO_PICTURES = np.zeros((0,), np.uint8)


@dataclass(frozen=True)
class ArraySet:
    """One split as found: the input arrays in model-input order, and the targets (None: unlabelled)."""

    where: str  # how messages name the split: "train", "val", or the file of a set that is split by seed
    inputs: dict[str, ArrayRef]
    targets: ArrayRef | None

    def refs(self) -> list[ArrayRef]:
        return [*self.inputs.values(), *([self.targets] if self.targets is not None else [])]

    def __len__(self) -> int:
        return next(iter(self.inputs.values())).shape[0]


def check_set(s: ArraySet) -> None:
    """Shapes and lengths, from the headers alone (nothing read)."""
    if not s.inputs:
        raise DataError(s.where, "holds no input array (every array but labels/targets is an input)")
    for ref in s.refs():
        if ref.dtype.kind not in NUMERIC:
            raise DataError(ref.label, f"has dtype {ref.dtype}; inputs and targets must be numbers")
    first = next(iter(s.inputs.values()))
    if first.shape[0] == 0:
        raise DataError(first.label, "holds no sample (its first dimension is 0)")
    for ref in s.refs()[1:]:
        if ref.shape[0] != first.shape[0]:
            what = "labels" if ref is s.targets else "samples"
            raise DataError(ref.label, f"has {ref.shape[0]} {what} but {first.label} has {first.shape[0]} samples; "
                            "every array needs one row per sample")


def is_classification(targets: ArrayRef | None) -> bool:
    return targets is not None and targets.dtype.kind in "biu" and len(targets.shape) == 1


def check_pair(train: ArraySet, val: ArraySet) -> None:
    """The evaluation split takes the same inputs as training: names, per-sample shapes, dtypes; same kind of
    targets."""
    if list(train.inputs) != list(val.inputs):
        raise DataError(val.where, f"has inputs {list(val.inputs)} but {train.where} has {list(train.inputs)}; "
                        "both splits need the same arrays")
    for name, ref in val.inputs.items():
        other = train.inputs[name]
        if ref.shape[1:] != other.shape[1:] or ref.dtype != other.dtype:
            raise DataError(ref.label, f"input '{shown(name)}' is {ref.dtype} {list(ref.shape[1:])} per sample but "
                            f"{other.label} is {other.dtype} {list(other.shape[1:])}; both splits need the same")
    if (train.targets is None) != (val.targets is None):
        missing = val if val.targets is None else train
        raise DataError(missing.where, "has no labels/targets array but the other split has")
    if train.targets is not None and val.targets is not None:
        t, v = train.targets, val.targets
        if t.shape[1:] != v.shape[1:] or is_classification(t) != is_classification(v):
            raise DataError(v.label, f"targets are {v.dtype} {list(v.shape[1:])} per sample but {t.label} are "
                            f"{t.dtype} {list(t.shape[1:])}")


def check_values(s: ArraySet, classes: int = 0) -> None:
    """No NaN or infinity anywhere (read block by block); class ids within 0..classes-1 (when names are given)."""
    for ref in s.refs():
        check_finite(ref)
    if is_classification(s.targets):
        ids = read_all(s.targets)
        low = int(np.argmin(ids))
        if ids[low] < 0:
            raise DataError(s.targets.label, f"holds class id {ids[low]} at index {low}; class ids are 0..K-1")
        high = int(np.argmax(ids))
        if classes and ids[high] >= classes:
            raise DataError(s.targets.label, f"holds class id {ids[high]} at index {high} but {classes} class names "
                            f"are given (ids 0..{classes - 1})")


def class_count(sets: Sequence[ArraySet]) -> int:
    """K = the largest class id + 1 over the splits (0 for regression or unlabelled sets)."""
    ids = [int(read_all(s.targets).max()) for s in sets if is_classification(s.targets)]
    return max(ids) + 1 if ids else 0


def tensors(s: ArraySet) -> list[dict]:
    """The [input] table's `tensors`: one per input, its per-sample shape (no batch) and dtype."""
    return [{"name": name, "shape": list(ref.shape[1:]), "dtype": str(ref.dtype)} for name, ref in s.inputs.items()]


def check_model_inputs(model: Sequence[TensorSpec], data: Sequence[TensorSpec], where: str) -> None:
    """The data feed the model: as many inputs, and each with the model's per-sample shape and dtype (a dimension
    the model leaves free, 0 or negative, matches any size). DataError naming the input and both shapes."""
    if len(model) != len(data):
        raise DataError(where, f"gives {len(data)} input(s) ({', '.join(t.name for t in data)}) but the model takes "
                        f"{len(model)} ({', '.join(t.name for t in model)})")
    for m, d in zip(model, data, strict=True):
        shapes_match = len(m.shape) == len(d.shape) and all(a <= 0 or a == b for a, b in zip(m.shape[1:],
                                                                                            d.shape[1:],
                                                                                            strict=True))
        if not shapes_match or m.dtype != d.dtype:
            raise DataError(where, f"input {d.name!r} is {d.dtype} {list(d.shape[1:])} per sample but the model's "
                            f"input {m.name!r} takes {m.dtype} {list(m.shape[1:])}")


def seeded_indices(n: int, fraction: float, seed: int, where: str) -> dict[str, np.ndarray]:
    """{'train': sorted indices, 'test': sorted indices}: a seeded shuffle, `fraction` of it (at least one) held out."""
    if n < 2:
        raise DataError(where, f"has {n} sample; a seeded split needs at least 2 (or give train and val parts)")
    n_val = min(max(int(round(fraction * n)), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return {"train": np.sort(order[n_val:]), "test": np.sort(order[:n_val])}


def _write_header(f, shape: tuple[int, ...], dtype: np.dtype) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    try:
        np.lib.format.write_array_header_1_0(f, header)
    except ValueError:  # a header too long for format 1.0
        np.lib.format.write_array_header_2_0(f, header)


def _copy_rows(ref: ArrayRef, picks: dict[str, np.ndarray], folder: Path, stem: str) -> None:
    """Rows `picks[which]` of `ref` into folder/<which>-<stem>.npy, one pass over the source in blocks."""
    array, mm = mapped(ref)
    row = max(1, int(np.prod(ref.shape[1:], dtype=np.int64)) * ref.dtype.itemsize)
    step = max(1, BLOCK_BYTES // row)
    masks = {}
    for which, idx in picks.items():
        mask = np.zeros(ref.shape[0], bool)
        mask[idx] = True
        masks[which] = mask
    files = {which: (folder / f"{which}-{stem}.npy").open("wb") for which in picks}
    try:
        for which, f in files.items():
            _write_header(f, (len(picks[which]), *ref.shape[1:]), ref.dtype)
        for start in range(0, ref.shape[0], step):
            block = array[start:start + step]
            for which, f in files.items():
                np.ascontiguousarray(block[masks[which][start:start + step]]).tofile(f)
            del block
            drop(mm)
    finally:
        for f in files.values():
            f.close()


def split_by_seed(whole: ArraySet, fraction: float, seed: int, stamp: str) -> dict[str, ArraySet]:
    """The set split into 'train' and 'test' by a seeded shuffle, written once into the array cache."""
    picks = seeded_indices(len(whole), fraction, seed, whole.where)
    refs = whole.refs()
    key = "split-" + hashlib.sha256(f"{stamp}\0{fraction}\0{seed}\0{len(refs)}".encode()).hexdigest()[:24]

    def make(folder: Path) -> None:
        for i, ref in enumerate(refs):
            _copy_rows(ref, picks, folder, str(i))

    folder = array_cache.entry(key, make)
    out = {}
    for which in picks:
        copied = [npy_file(folder / f"{which}-{i}.npy", f"{ref.label}[{which}]") for i, ref in enumerate(refs)]
        names = list(whole.inputs)
        out[which] = ArraySet(f"{whole.where}[{which}]", dict(zip(names, copied[:len(names)], strict=True)),
                              copied[len(names)] if whole.targets is not None else None)
    return out


def to_split(s: ArraySet) -> Split:
    """The split as the data contract has it: inputs memory-mapped, class ids as int64 (regression targets mapped)."""
    labels = None
    if s.targets is not None:
        labels = np.asarray(s.targets.open(), np.int64) if is_classification(s.targets) else s.targets.open()
    return Split(NO_PICTURES, labels, inputs=tuple(ref.open() for ref in s.inputs.values()))

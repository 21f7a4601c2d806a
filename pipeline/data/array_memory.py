"""Arrays held in memory (the Python API's `Arrays(x, labels=y)` and `Dataset(train, val)`) as a dataset = "arrays"
folder that any process of a run can map: written once into the array cache under the sha256 of their contents,
checked there by the same code and with the same lines as array files (pipeline/data/array_set.py), and then named
to the recipe by its path.

The same arrays give the same folder, so every stage that read them stays cached; changed arrays (a value, a shape,
a name, the class names) give another folder, and what depends on them runs again. A folder appears atomically
(array_cache.entry): a refusal or a crash leaves nothing behind.

Layout: one `<input>.npy` per input, `labels.npy` (class ids) or `targets.npy` (values), `classes.txt`; with an
evaluation split given, `train/` and `val/` sub-folders of that form.

Example::

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> x = np.arange(12, dtype=np.float32).reshape(6, 2)
    >>> folder = write({"": Part("Arrays", {"x": x}, np.arange(6) % 2)}, (), root)
    >>> sorted(p.name for p in folder.glob("*.npy"))
    ['labels.npy', 'x.npy']
    >>> write({"": Part("Arrays", {"x": x}, np.arange(6) % 2)}, (), root) == folder   # the same arrays: reused
    True
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError, one_line, shown
from pipeline.data import array_cache, array_set
from pipeline.data.array_files import npy_file, refuse_dtype
from pipeline.data.array_set import ArraySet

RESERVED = ("labels", "targets", "classes")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")  # an input name is a file name and a tensor name
PARTS = {"": "", "train": "train", "test": "val"}  # the split as the data contract names it -> its sub-folder


@dataclass(frozen=True)
class Part:
    """One split in memory: `where` names it in messages ("Arrays", "Arrays val", "Dataset (train)")."""

    where: str
    inputs: dict[str, np.ndarray]
    targets: np.ndarray | None


def as_array(value: object, label: str) -> np.ndarray:
    """`value` (a numpy array, a torch tensor, nested lists of numbers) as an array a .npy file can hold, or a
    DataError naming `label` (objects, text, a single number)."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
    try:
        out = np.asarray(value)
    except Exception as exc:  # ragged lists, objects numpy cannot take
        raise DataError(label, f"is not an array ({one_line(exc, 100)}); give one numpy array per input") from None
    refuse_dtype(label, out.dtype)
    if out.dtype.kind not in array_set.NUMERIC:
        raise DataError(label, f"has dtype {out.dtype}; inputs and targets must be numbers")
    if out.ndim == 0:
        raise DataError(label, "is a single number; an array needs one row per sample (N first)")
    return out


def target_name(targets: np.ndarray) -> str:
    """labels for class ids (integers, one per sample), targets for values."""
    return "labels" if targets.ndim == 1 and targets.dtype.kind in "biu" else "targets"


def check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED:
        raise DataError(where, f"input name {shown(repr(name), 80)} is not usable; name inputs with letters, digits "
                        f"and _ (not {', '.join(RESERVED)}), as the model's forward() names its arguments")
    return name


def _digest(parts: dict[str, Part], classes: tuple[str, ...]) -> str:
    h = hashlib.sha256(repr(sorted(parts)).encode())
    for which, part in sorted(parts.items()):
        named = {**part.inputs, **({target_name(part.targets): part.targets} if part.targets is not None else {})}
        for name, value in named.items():  # in model order: the order is part of the data
            h.update(f"\0{which}\0{name}\0{value.dtype.str}\0{value.shape}\0".encode())
            h.update(np.ascontiguousarray(value).view(np.uint8).reshape(-1).data if value.size else b"")
    h.update("\0".join(classes).encode())
    return h.hexdigest()


def _save(part: Part, folder: Path) -> ArraySet:
    """The part's arrays as .npy files in `folder`, as the set array files make, labelled as the caller named them."""
    folder.mkdir(parents=True, exist_ok=True)
    refs = {}
    named = {**part.inputs, **({target_name(part.targets): part.targets} if part.targets is not None else {})}
    for name, value in named.items():
        np.save(folder / f"{name}.npy", value, allow_pickle=False)
        refs[name] = npy_file(folder / f"{name}.npy", f"{part.where} {name}")
    targets = refs.pop(target_name(part.targets)) if part.targets is not None else None
    return ArraySet(part.where, refs, targets)


def write(parts: dict[str, Part], classes: tuple[str, ...], root: Path) -> Path:
    """The folder under `root` (the build's array cache) holding `parts` ({"": whole} or {"train": .., "test": ..}),
    written and checked once; DataError (nothing written) for what the recipe route refuses."""
    def make(tmp: Path) -> None:
        sets = {which: _save(part, tmp / PARTS[which]) for which, part in parts.items()}
        for s in sets.values():
            array_set.check_set(s)
        if "train" in sets:
            array_set.check_pair(sets["train"], sets["test"])
        for s in sets.values():
            array_set.check_values(s, len(classes))
        for which in parts if classes else ():  # beside each split's arrays, where the arrays source reads them
            (tmp / PARTS[which] / "classes.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")

    return array_cache.entry("memory-" + _digest(parts, classes)[:32], make, root)

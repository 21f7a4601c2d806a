"""dataset = "arrays": the user's data as numpy arrays, for models that do not take a picture (audio features,
sensor windows, several inputs).

Where the arrays are (``[data]`` keys, paths relative to the recipe):
- ``path = "set/"``: a folder with one ``<input>.npy`` per model input and ``labels.npy`` (class ids) or
  ``targets.npy`` (values of any shape), one row per sample; optional ``classes.txt``, one class name a line.
  With ``train/`` and ``val/`` (or ``test/``) sub-folders of that form, those are the splits.
- ``path = "set.npz"``: the same as keys of one archive (``np.savez(path, mfcc=..., labels=...)``; class names as a
  string array under ``classes``); with ``train_``/``val_`` (or ``test_``) prefixes on every key, those are the
  splits.
- ``train = "..."`` and ``val = "..."``: two folders or archives of the first forms.
Without given splits, ``val_fraction`` of the samples (seeded by ``split_seed``) are held out for evaluation.

Inputs: every array but labels/targets, in alphabetical order, or the arrays ``inputs = ["mfcc", "meta"]`` names,
in that order (others are then ignored). Each is taken as the model takes it (batch first, its dtype).

Memory: .npy files and uncompressed .npz members (np.savez) are memory-mapped where they lie; compressed members
(np.savez_compressed) are decompressed once into the array cache (zip bombs refused from their declared sizes);
a seeded split is copied once into the array cache. Objects are never unpickled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.core.errors import PATH_LIMIT, ConfigError, DataError, shown
from pipeline.data import array_set
from pipeline.data.array_files import ArrayRef, npy_file, npz_members, read_all
from pipeline.data.array_set import ArraySet
from pipeline.data.source import DataSource, Split

TARGET_NAMES = ("labels", "targets")
CLASS_NAMES = "classes"  # classes.txt in a folder, a string array in an archive
VAL_NAMES = ("val", "test")
MAX_CLASSES = 100_000
KEYS = ("path", "train", "val", "inputs")


def _absolute(value: str, recipe_path: Path) -> Path:
    p = Path(value)
    return (p if p.is_absolute() else recipe_path.parent / p).resolve()


def _class_file(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[: 64 * MAX_CLASSES]
    except OSError as exc:
        raise DataError(path.name, f"cannot be read ({exc.strerror or exc})") from None
    return tuple(line.strip() for line in text.splitlines() if line.strip())[:MAX_CLASSES]


def _class_array(ref: ArrayRef) -> tuple[str, ...]:
    if ref.dtype.kind != "U" or len(ref.shape) != 1 or ref.shape[0] > MAX_CLASSES:
        raise DataError(ref.label, "class names must be a 1-D string array (np.array(['yes', 'no']))")
    return tuple(str(v) for v in read_all(ref))


def _container(path: Path) -> tuple[dict[str, ArrayRef], tuple[str, ...]]:
    """The arrays of a folder or .npz by name, and its class names (or ())."""
    if path.is_dir():
        found = {p.stem: npy_file(p, str(p)) for p in sorted(path.glob("*.npy")) if p.is_file()}
        names = _class_file(path / "classes.txt") if (path / "classes.txt").is_file() else ()
        return found, names
    if path.suffix.lower() == ".npz" and path.is_file():
        members = npz_members(path)
        names = _class_array(members.pop(CLASS_NAMES)) if CLASS_NAMES in members else ()
        return members, names
    raise DataError(path, "is neither a folder of .npy files nor an .npz archive")


def _named(arrays: dict[str, ArrayRef], where: str, inputs: list[str]) -> ArraySet:
    """Split a container's arrays into inputs (in model order) and targets."""
    targets = [n for n in TARGET_NAMES if n in arrays]
    if len(targets) > 1:
        raise DataError(where, "holds both labels and targets; keep one (labels: class ids, targets: values)")
    rest = sorted(n for n in arrays if n not in TARGET_NAMES)
    if inputs:
        missing = [n for n in inputs if n not in arrays]
        if missing:
            raise DataError(where, f"has no array {missing[0]!r} named in data.inputs (it holds: "
                            f"{', '.join(rest[:10]) or 'none'})")
        rest = list(inputs)
    if not arrays:
        raise DataError(where, "holds no arrays (.npy files or .npz keys)")
    return ArraySet(where, {n: arrays[n] for n in rest}, arrays[targets[0]] if targets else None)


def _prefixed(members: dict[str, ArrayRef], where: str) -> dict[str, dict[str, ArrayRef]] | None:
    """An archive's train_/val_ keys as two splits, or None when it has no train_ key."""
    if not any(k.startswith("train_") for k in members):
        return None
    parts: dict[str, dict[str, ArrayRef]] = {"train": {}, "val": {}}
    for key, ref in members.items():
        prefix, _, name = key.partition("_")
        prefix = "val" if prefix == "test" else prefix
        if prefix not in parts or not name:
            raise DataError(f"{where}:{key}", "has no train_ or val_ prefix, and other keys have: name every array "
                            "train_<name> or val_<name>")
        parts[prefix][name] = ref
    if not parts["val"]:
        raise DataError(where, "has train_ keys but no val_ keys; add the evaluation arrays or drop the prefixes")
    return parts


def _layout(table: dict) -> tuple[dict[str, ArraySet] | ArraySet, tuple[str, ...]]:
    """({'train': set, 'test': set} when the splits are given, else the whole set), and the class names."""
    inputs = list(table.get("inputs") or [])
    if table.get("train"):
        train, names = _container(Path(table["train"]))
        val, _ = _container(Path(table["val"]))
        return {"train": _named(train, table["train"], inputs), "test": _named(val, table["val"], inputs)}, names
    root = Path(table["path"])
    if root.is_dir():
        val_dir = next((root / n for n in VAL_NAMES if (root / n).is_dir()), None)
        if (root / "train").is_dir() and val_dir is not None:
            train, names = _container(root / "train")
            val, val_names = _container(val_dir)
            return {"train": _named(train, str(root / "train"), inputs),
                    "test": _named(val, str(val_dir), inputs)}, names or val_names
    arrays, names = _container(root)
    if root.is_file():
        parts = _prefixed(arrays, root.name)
        if parts is not None:
            return {"train": _named(parts["train"], f"{root.name}:train_", inputs),
                    "test": _named(parts["val"], f"{root.name}:val_", inputs)}, names
    return _named(arrays, str(root), inputs), names


def _checked_layout(table: dict) -> tuple[dict[str, ArraySet] | ArraySet, tuple[str, ...]]:
    found, names = _layout(table)
    sets = list(found.values()) if isinstance(found, dict) else [found]
    for s in sets:
        array_set.check_set(s)
    if isinstance(found, dict):
        array_set.check_pair(found["train"], found["test"])
    for s in sets:
        array_set.check_values(s, len(names))
    return found, names


def check(table: dict, recipe_path: Path) -> dict:
    out = dict(table)
    if table["train"] or table["val"]:
        if table["path"] or not (table["train"] and table["val"]):
            raise ConfigError(recipe_path, "data.train" if table["val"] else "data.val",
                              "give train and val together (two folders or .npz files), or path alone")
        out["train"], out["val"] = (str(_absolute(table[k], recipe_path)) for k in ("train", "val"))
        for key in ("train", "val"):
            if not Path(out[key]).exists():
                raise ConfigError(recipe_path, f"data.{key}", f"{shown(out[key], PATH_LIMIT)} does not exist")
    elif not table["path"]:
        raise ConfigError(recipe_path, "data.path", "required for dataset 'arrays' (a folder of .npy files or an "
                          ".npz archive; or give train and val)")
    else:
        out["path"] = str(_absolute(table["path"], recipe_path))
        if not Path(out["path"]).exists():
            raise ConfigError(recipe_path, "data.path", f"{shown(out['path'], PATH_LIMIT)} does not exist")
    _checked_layout(out)
    return out


def _splits(table: dict) -> dict[str, ArraySet]:
    found, _ = _layout(table)
    if isinstance(found, dict):
        return found
    return array_set.split_by_seed(found, table["val_fraction"], table["split_seed"], _stamp(table))


def _stamp(table: dict) -> str:
    found, names = _layout(table)
    sets = list(found.values()) if isinstance(found, dict) else [found]
    parts = [ref.stamp() for s in sets for ref in s.refs()] + list(names) + [repr(table.get("inputs"))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def input_defaults(table: dict) -> dict:
    """The model's inputs as the data hold them (names, per-sample shapes, dtypes)."""
    found, _ = _layout(table)
    return {"tensors": array_set.tensors(found["train"] if isinstance(found, dict) else found)}


def labels(table: dict) -> tuple[str, ...]:
    """Class names: classes.txt or the archive's `classes`, else "0".."K-1"; () for regression targets."""
    found, names = _layout(table)
    sets = list(found.values()) if isinstance(found, dict) else [found]
    return names or tuple(str(i) for i in range(array_set.class_count(sets)))


def fingerprint(table: dict) -> dict:
    """Every array's file, size and modification time, and the class names: changed files are new data."""
    return {"contents_sha256": _stamp(table)}


def load(table: dict, which: str, spec: dict) -> Split:
    return array_set.to_split(_splits(table)[which])


SOURCE = DataSource("arrays", check, input_defaults, labels, load, fingerprint=fingerprint, keys=KEYS)

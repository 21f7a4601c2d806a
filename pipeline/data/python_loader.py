"""dataset = "python": data that needs the user's own code (audio decoding, windowing), the NNCF/Olive idea.

    [data]
    dataset = "python"
    entry = "my_data.py:load"     # or "package.module:load"; a file is taken from the recipe's folder

``load()`` is called without arguments and returns ``(train, val)``: two iterables of ``(inputs, target)`` pairs,
where ``inputs`` is one array (a one-input model) or a tuple/list of arrays (one per model input) and ``target`` a
class id or an array of values (numpy arrays, torch tensors or numbers). The samples are gathered into arrays, at
most MAX_BYTES and MAX_SAMPLES a split (more is refused: write the arrays out and use dataset = "arrays"), checked
like array files (pipeline/data/array_set.py), and kept in the array cache as .npy files, memory-mapped from there.
Inputs are named by ``inputs = [...]`` or input_0, input_1 ... (input for one). The file's hash and those of the
files it imports from its folder are part of the data's fingerprint: editing the loader re-runs what depends on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.core.errors import ConfigError, DataError, one_line
from pipeline.core.user_code import FORMS, entry_spec, resolve
from pipeline.core.user_code import fingerprint as code_fingerprint
from pipeline.data import array_cache, array_set
from pipeline.data.array_files import npy_file
from pipeline.data.array_set import ArraySet
from pipeline.data.source import DataSource, Split

MAX_BYTES = 1 << 30  # gathered in memory before it is written (twice this at the peak)
MAX_SAMPLES = 10_000_000
KEYS = ("entry", "inputs")
_FOLDERS: dict[str, Path] = {}  # per process: cache key -> folder of the gathered arrays


def input_names(count: int, given: list[str], where: str) -> list[str]:
    """`given` when it names every input, else input (one) or input_0, input_1 ..."""
    if given:
        if len(given) != count:
            raise DataError(where, f"gives {count} input(s) per sample but data.inputs names {len(given)}")
        return list(given)
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


def _sample(item: object, where: str, i: int) -> tuple[list[np.ndarray], np.ndarray]:
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(where, f"sample {i} is {type(item).__name__}, not an (inputs, target) pair")
    inputs, target = item
    parts = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]
    arrays = []
    for k, part in enumerate([*parts, target]):
        try:
            value = np.asarray(part.detach().cpu() if hasattr(part, "detach") else part)
        except Exception as exc:  # anything the user returned
            raise DataError(where, f"sample {i}: item {k} is not an array ({one_line(exc, 80)})") from None
        if value.dtype.kind not in array_set.NUMERIC:
            raise DataError(where, f"sample {i}: item {k} has dtype {value.dtype}; inputs and targets must be "
                            "numbers")
        arrays.append(value)
    return arrays[:-1], arrays[-1]


def gather(samples: object, where: str) -> list[np.ndarray]:
    """Samples -> one array per input and the targets last, each with N first (bounded, shapes agreed); also the
    Python API's `Dataset(train, val)`."""
    try:
        iterator = iter(samples)  # type: ignore[call-overload]
    except TypeError:
        raise DataError(where, f"is {type(samples).__name__}, not an iterable of (inputs, target) pairs") from None
    columns: list[list[np.ndarray]] = []
    total = 0
    i = -1
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            break
        except Exception as exc:  # the user's iterator failed
            raise DataError(where, f"raised {one_line(exc, 160)} at sample {i + 1}") from None
        i += 1
        inputs, target = _sample(item, where, i)
        row = [*inputs, target]
        if not columns:
            columns = [[] for _ in row]
        elif len(row) != len(columns):
            raise DataError(where, f"sample {i} has {len(inputs)} input(s) but sample 0 has {len(columns) - 1}")
        for k, value in enumerate(row):
            first = columns[k][0] if columns[k] else value
            if value.shape != first.shape or value.dtype != first.dtype:
                what = "the target" if k == len(row) - 1 else f"input {k}"
                raise DataError(where, f"sample {i}: {what} is {value.dtype} {list(value.shape)} but sample 0's is "
                                f"{first.dtype} {list(first.shape)}")
            columns[k].append(value)
            total += value.nbytes
        if total > MAX_BYTES or i + 1 > MAX_SAMPLES:
            raise DataError(where, f"returns more than {MAX_BYTES >> 20} MB or {MAX_SAMPLES} samples; save the "
                            "arrays (np.save) and use dataset = 'arrays', which memory-maps them")
    if not columns:
        raise DataError(where, "returns no sample")
    return [np.stack(c) for c in columns]


def _call(spec: dict) -> tuple[object, object]:
    where = f"data.entry {spec['entry_text']}"
    fn: Callable = resolve(spec)
    try:
        result = fn()
    except Exception as exc:  # the user's loader failed in any way
        raise DataError(where, f"raised {one_line(exc, 160)}") from None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise DataError(where, f"returned {type(result).__name__}; it must return (train, val), two iterables of "
                        "(inputs, target) pairs")
    return result[0], result[1]


def _key(table: dict) -> str:
    spec = table["entry_spec"]
    text = json.dumps([spec["entry_text"], spec["file"], spec["module"], code_fingerprint(spec),
                       table.get("inputs")], sort_keys=True)
    return "python-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def _folder(table: dict) -> Path:
    """The gathered arrays' folder in the array cache: the user's loader runs once per process and code version."""
    key = _key(table)
    if key in _FOLDERS and (_FOLDERS[key] / ".done").is_file():
        return _FOLDERS[key]
    train, val = _call(table["entry_spec"])
    where = f"data.entry {table['entry_spec']['entry_text']}"
    splits = {"train": gather(train, f"{where} (train)"), "test": gather(val, f"{where} (val)")}

    def make(folder: Path) -> None:
        for which, columns in splits.items():
            for i, column in enumerate(columns):
                np.save(folder / f"{which}-{i}.npy", column, allow_pickle=False)

    _FOLDERS[key] = array_cache.entry(key, make)
    return _FOLDERS[key]


def _sets(table: dict) -> dict[str, ArraySet]:
    folder = _folder(table)
    where = f"data.entry {table['entry_spec']['entry_text']}"
    out = {}
    for which in ("train", "test"):
        files = sorted(folder.glob(f"{which}-*.npy"), key=lambda p: int(p.stem.split("-")[1]))
        refs = [npy_file(p, f"{where} ({'val' if which == 'test' else which})") for p in files]
        names = input_names(len(refs) - 1, list(table.get("inputs") or []), where)
        out[which] = ArraySet(refs[0].label, dict(zip(names, refs[:-1], strict=True)), refs[-1])
    return out


def check(table: dict, recipe_path: Path) -> dict:
    if not table["entry"]:
        raise ConfigError(recipe_path, "data.entry", f"required for dataset 'python' ({FORMS})")
    out = dict(table, entry_spec=entry_spec(table["entry"], recipe_path, "data.entry"))
    sets = _sets(out)
    for s in sets.values():
        array_set.check_set(s)
    array_set.check_pair(sets["train"], sets["test"])
    for s in sets.values():
        array_set.check_values(s)
    return out


def input_defaults(table: dict) -> dict:
    return {"tensors": array_set.tensors(_sets(table)["train"])}


def labels(table: dict) -> tuple[str, ...]:
    """"0".."K-1" for class ids; () for regression targets."""
    return tuple(str(i) for i in range(array_set.class_count(list(_sets(table).values()))))


def fingerprint(table: dict) -> dict:
    """The loader's code (its file and the files it imports from its folder): edited code is new data."""
    return code_fingerprint(table["entry_spec"])


def load(table: dict, which: str, spec: dict) -> Split:
    return array_set.to_split(_sets(table)[which])


SOURCE = DataSource("python", check, input_defaults, labels, load, fingerprint=fingerprint, keys=KEYS)

"""The data a Python caller hands to `run(...)`: a bundled data set by name, a folder of labelled pictures
(`ImageFolder`), numpy arrays in files or in memory (`Arrays`), or iterables of (inputs, target) pairs (`Dataset`).

Each becomes the recipe's `[data]` table, so a run from Python is a run of a recipe file like any other. Data in
memory cannot reach a run's other processes as objects: `Arrays` and `Dataset` write them once into the build's array
cache as .npy files named by the sha256 of their contents (pipeline/data/array_memory.py) and name that folder as
`dataset = "arrays"`. Running the same cell again finds the same folder and every cached stage; changed arrays
re-run what depends on them. Bad data are refused with the lines the recipe route prints (as PipelineError).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError

PathLike = str | Path


@dataclass(frozen=True)
class ImageFolder:
    """Labelled pictures: one sub-folder per class, either `train/` + `val/` sub-trees or a seeded split.

    >>> ImageFolder("pictures", val_fraction=0.25).table(Path("build"))["dataset"]
    'image-folder'
    """

    path: str | Path
    val_fraction: float = 0.2
    split_seed: int = 0

    def table(self, build: Path) -> dict:
        return {"dataset": "image-folder", "path": str(Path(self.path).resolve()), "val_fraction": self.val_fraction,
                "split_seed": self.split_seed}


class Arrays:
    """Data that are not pictures (audio features, sensor windows, several inputs) as numpy arrays, for a model that
    takes them as they are (batch first, their dtype). Targets are class ids (`labels`: integers, one per sample;
    the metric is top-1) or values of any shape (`targets`: floats; the metric is mse).

    Files, as the recipe's `dataset = "arrays"` reads them (inputs: every array but labels/targets, alphabetically,
    unless `inputs` names them in the model's order)::

        Arrays("fsdd.npz")                          # np.savez(path, mfcc=..., labels=...), or train_/val_ keys
        Arrays("fsdd/", inputs=["mfcc", "frames"])  # a folder of mfcc.npy, frames.npy, labels.npy (+ classes.txt)
        Arrays(train="train.npz", val="val.npz")

    In memory (numpy arrays or torch tensors, N first), written once into the build's array cache::

        Arrays(x, labels=y)                                    # one input; val_fraction held out by split_seed
        Arrays({"mfcc": m, "frames": f}, labels=y)            # several inputs, in the order forward() takes them
        Arrays({"mfcc": m, "frames": f}, labels=y,
               val=({"mfcc": mv, "frames": fv}, yv))          # your own evaluation split: (inputs, target)
        Arrays(train=(x, y), val=(xv, yv), classes=["no", "yes"])
        Arrays(x, targets=t)                                   # regression

    Inputs given as a tuple or list are named input_0, input_1 ... (one array: input) unless `inputs` names them.

    >>> import numpy as np, tempfile
    >>> x = np.random.default_rng(0).standard_normal((40, 13, 32), dtype=np.float32)
    >>> table = Arrays({"mfcc": x}, labels=np.arange(40) % 10).table(Path(tempfile.mkdtemp()))
    >>> table["dataset"], table["inputs"]
    ('arrays', ['mfcc'])
    """

    def __init__(self, data: Any = None, /, *, labels: Any = None, targets: Any = None, val: Any = None,
                 train: Any = None, inputs: Sequence[str] | None = None, classes: Sequence[str] | None = None,
                 val_fraction: float = 0.2, split_seed: int = 0):
        self.data, self.labels, self.targets, self.val, self.train = data, labels, targets, val, train
        self.inputs, self.classes = list(inputs) if inputs else None, tuple(classes or ())
        self.val_fraction, self.split_seed = val_fraction, split_seed

    def _files(self) -> bool:
        given = [v for v in (self.data, self.train, self.val) if v is not None]
        paths = [v for v in given if isinstance(v, PathLike)]
        if paths and len(paths) != len(given):
            raise PipelineError("Arrays: give paths (a file or folder, or train= and val=) or arrays in memory, "
                                "not both", key="data")
        if paths and (self.labels is not None or self.targets is not None or self.classes):
            raise PipelineError("Arrays: labels=, targets= and classes= are for arrays in memory; files hold their "
                                "own (labels.npy or targets.npy, classes.txt)", key="data")
        return bool(paths)

    def table(self, build: Path) -> dict:
        """The [data] table (arrays in memory: written first, under `build`/cache/data)."""
        split = {"val_fraction": self.val_fraction, "split_seed": self.split_seed}
        if self._files():
            keys = {"path": self.data} if self.data is not None else {"train": self.train, "val": self.val}
            return {"dataset": "arrays", **{k: str(Path(v).resolve()) for k, v in keys.items()},
                    **({"inputs": self.inputs} if self.inputs else {}), **split}
        if (self.data is None) == (self.train is None):
            raise PipelineError("Arrays: give the inputs once: Arrays(x, labels=y) or Arrays(train=(x, y), "
                                "val=(xv, yv))", key="data")
        if self.train is not None and (self.labels is not None or self.targets is not None):
            raise PipelineError("Arrays: train=(inputs, target) holds its target; drop labels=/targets=", key="data")
        if self.data is not None:
            if self.labels is not None and self.targets is not None:
                raise PipelineError("Arrays: give labels= (class ids) or targets= (values), not both", key="data")
            first = (self.data, self.labels if self.labels is not None else self.targets)
        else:
            first = _pair(self.train, "Arrays train")
        where = "Arrays" if self.val is None else "Arrays train"
        parts = {"": _part(where, *first, self.inputs)}
        if self.val is not None:
            parts = {"train": parts[""], "test": _part("Arrays val", *_pair(self.val, "Arrays val"), self.inputs)}
        return {"dataset": "arrays", "path": str(_written(parts, self.classes, build)),
                "inputs": list(parts[next(iter(parts))].inputs), **split}


class Dataset:
    """Two iterables of `(inputs, target)` pairs, the NNCF/Olive idea: `inputs` one array (a one-input model) or a
    tuple of arrays (one per input, in forward()'s order), `target` a class id or an array of values (numpy arrays,
    torch tensors or numbers). A torch `Dataset` of samples works as it is; for a `DataLoader` of batches give its
    `.dataset`.

    The samples are gathered into arrays once (at most 1 GB and 10 million samples a split, as `dataset = "python"`
    gathers them; more: save arrays and use `Arrays`) and then go as `Arrays` do, so the iterables may be generators:
    this object keeps what it gathered for later calls. Inputs are named by `inputs`, else input_0, input_1 ...

    >>> import numpy as np, tempfile
    >>> rng = np.random.default_rng(0)
    >>> pairs = [((rng.standard_normal((13, 32), dtype=np.float32), np.ones(1, np.float32)), i % 10)
    ...          for i in range(50)]
    >>> Dataset(pairs[:40], pairs[40:], inputs=["mfcc", "frames"]).table(Path(tempfile.mkdtemp()))["inputs"]
    ['mfcc', 'frames']
    """

    def __init__(self, train: Iterable, val: Iterable, inputs: Sequence[str] | None = None,
                 classes: Sequence[str] | None = None):
        self.train, self.val = train, val
        self.inputs, self.classes = list(inputs) if inputs else None, tuple(classes or ())
        self._gathered: dict | None = None

    def table(self, build: Path) -> dict:
        """The [data] table of the gathered arrays, written under `build`/cache/data."""
        from pipeline.data import python_loader
        from pipeline.data.array_memory import Part

        if self._gathered is None:
            parts = {}
            for which, samples, where in (("train", self.train, "Dataset (train)"),
                                          ("test", self.val, "Dataset (val)")):
                columns = python_loader.gather(samples, where)
                names = python_loader.input_names(len(columns) - 1, self.inputs or [], "Dataset")
                parts[which] = Part(where, dict(zip(names, columns[:-1], strict=True)), columns[-1])
            self._gathered = parts
        return {"dataset": "arrays", "path": str(_written(self._gathered, self.classes, build)),
                "inputs": list(self._gathered["train"].inputs)}


def _pair(value: Any, where: str) -> tuple[Any, Any]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise PipelineError(f"{where}: give an (inputs, target) pair, e.g. val=(x_val, y_val), or a path",
                            key="data")
    return value[0], value[1]


def _part(where: str, inputs: Any, target: Any, names: list[str] | None):
    """One split in memory: its inputs by name (a dict's keys, `names`, or input_0 ...) and its target."""
    from pipeline.data import array_memory, python_loader

    if isinstance(inputs, Mapping):
        if names and list(names) != list(inputs):
            raise PipelineError(f"{where}: inputs= {names} but the dict's keys are {list(inputs)}; drop inputs= "
                                "(the keys name the inputs, in order)", key="data.inputs")
        named = dict(inputs)
    else:
        arrays = list(inputs) if isinstance(inputs, tuple | list) else [inputs]
        named = dict(zip(python_loader.input_names(len(arrays), names or [], where), arrays, strict=True))
    out = {array_memory.check_name(k, where): array_memory.as_array(v, f"{where} {k}") for k, v in named.items()}
    label = f"{where} {'labels' if target is None else 'target'}"
    return array_memory.Part(where, out, None if target is None else array_memory.as_array(target, label))


def _written(parts: dict, classes: tuple[str, ...], build: Path) -> Path:
    from pipeline.data.array_memory import write

    return write(parts, classes, build.resolve() / "cache" / "data")


def data_table(data: object, build: Path) -> dict:
    """The `[data]` table for `data`: a bundled name ('fashion-mnist', 'mnist', 'photos'), an ImageFolder, Arrays,
    a Dataset, or a table as a recipe file would hold it."""
    if isinstance(data, str):
        return {"dataset": data}
    if isinstance(data, ImageFolder | Arrays | Dataset):
        return data.table(build)
    if isinstance(data, dict):
        return dict(data)
    raise PipelineError(f"data: a {type(data).__name__} is not a data source; give a bundled data set's name "
                        "(e.g. 'fashion-mnist'), ImageFolder(path), Arrays(...), Dataset(train, val), or a [data] "
                        "table as a dict", key="data")

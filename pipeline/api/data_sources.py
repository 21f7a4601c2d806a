"""The data a Python caller hands to `run(...)`: a bundled data set by name, or a folder of labelled pictures.

Each becomes the recipe's `[data]` table, so a run from Python is a run of a recipe file like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class ImageFolder:
    """Labelled pictures: one sub-folder per class, either `train/` + `val/` sub-trees or a seeded split.

    >>> ImageFolder("pictures", val_fraction=0.25).table()["dataset"]
    'image-folder'
    """

    path: str | Path
    val_fraction: float = 0.2
    split_seed: int = 0

    def table(self) -> dict:
        return {"dataset": "image-folder", "path": str(Path(self.path).resolve()), "val_fraction": self.val_fraction,
                "split_seed": self.split_seed}


def data_table(data: object) -> dict:
    """The `[data]` table for `data`: a bundled name ('fashion-mnist', 'mnist', 'photos'), an ImageFolder, or a
    table as a recipe file would hold it."""
    if isinstance(data, str):
        return {"dataset": data}
    if isinstance(data, ImageFolder):
        return data.table()
    if isinstance(data, dict):
        return dict(data)
    raise PipelineError(f"data: a {type(data).__name__} is not a data source; give a bundled data set's name "
                        "(e.g. 'fashion-mnist'), ImageFolder(path), or a [data] table as a dict", key="data")

"""A validated recipe or target: the record every layer reads (stages, data sources, models), nothing else.

Kept apart from loading and validation so that what a stage's cache key hashes is this small record, not every
table's schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    """A validated recipe or target: its source file, its name and its settings tree."""

    path: Path
    name: str
    data: dict

    def section(self, key: str) -> dict:
        return self.data[key]


def weights_path(recipe: Config) -> Path:
    """Absolute path of a recipe's state_dict, relative paths taken from the recipe file's folder."""
    p = Path(recipe.data["weights"]["path"])
    return p if p.is_absolute() else recipe.path.parent / p

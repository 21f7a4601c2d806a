"""Per-item results of a stage that can fail halfway (a phone unplugged on the third model), kept across runs.

A stage's own cache entry appears only when the whole stage succeeds; these entries let a rerun skip the items
already measured. Each is one JSON file named by a key the stage derives from everything that changes the result:

    parts = PartialResults(Path("build/cache/on_device_parts"))
    done = parts.load(key)          # None when absent or unreadable
    parts.save(key, {"accuracy": 0.9})
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_json


def part_key(*parts: object) -> str:
    """A short stable hash of JSON-able values."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class PartialResults:
    """A folder of `<key>.json` results, written atomically so an interrupted write leaves nothing."""

    def __init__(self, root: Path):
        self.root = root

    def load(self, key: str) -> dict | None:
        path = self.root / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save(self, key: str, result: dict) -> None:
        atomic_write_json(self.root / f"{key}.json", result)

"""Content-addressed cache of stage outputs: build/cache/<stage>/<key>/ holding the files and output.json.

A key is the hash of the stage's name, its code (its module and every pipeline module it imports), its settings,
the keys of its inputs and the versions of its tools, so a changed setting or helper reruns that stage and, through
the keys, those after it. Entries appear atomically: a stage writes into a temporary folder that is renamed into
place only after it succeeded.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

from pipeline.artifact import Artifact, atomic_write_json, tool_versions
from pipeline.code_version import code_hash
from pipeline.stage import Stage, StageOutput


def stage_key(stage: Stage, settings: dict, input_keys: dict[str, str]) -> str:
    """The cache key of one stage run."""
    blob = json.dumps(
        {
            "stage": stage.name,
            "code": code_hash(Path(inspect.getsourcefile(stage.run) or "")),
            "settings": settings,
            "inputs": input_keys,
            "tools": tool_versions(stage.tools) if stage.tools else {},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class Cache:
    """Stage outputs under `root`. With `scratch`, new entries go there instead (torchrun ranks other than 0 read
    the shared cache but never write into it)."""

    def __init__(self, root: Path, scratch: Path | None = None):
        self.root = root
        self.scratch = scratch

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def load(self, stage: str, key: str) -> StageOutput | None:
        """The cached output, or None when absent or when one of its files went missing."""
        folder = self.entry(stage, key)
        meta = folder / "output.json"
        if not meta.exists():
            return None
        raw = json.loads(meta.read_text())
        arts = []
        for d in raw["artifacts"]:
            a = Artifact.from_dict(d)
            full = folder / a.path
            if not full.exists():
                return None
            arts.append(replace(a, path=str(full)))
        return StageOutput(tuple(arts), raw["data"])

    def new_folder(self, stage: str, key: str) -> Path:
        tmp = (self.scratch or self.root) / stage / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, stage: str, key: str, tmp: Path, output: StageOutput) -> StageOutput:
        """Record `output` (written under `tmp`) and move it into place; returns it with final paths."""
        rel = [replace(a, path=os.path.relpath(a.path, tmp)) for a in output.artifacts]
        for a in rel:
            if a.path.startswith(".."):
                raise ValueError(f"stage {stage} returned an artifact outside its folder: {a.path}")
        atomic_write_json(tmp / "output.json", {"artifacts": [a.to_dict() for a in rel], "data": output.data})
        final = (self.scratch / stage / key) if self.scratch else self.entry(stage, key)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return StageOutput(tuple(replace(a, path=str(final / a.path)) for a in rel), output.data)

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

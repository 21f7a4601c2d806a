"""Content-addressed cache of stage outputs: build/cache/<stage>/<key>/ holding the files and output.json.

A key is the hash of the stage's name, its code (its module and every pipeline module it imports), its settings,
the keys of its inputs and the versions of its tools, so a changed setting or helper reruns that stage and, through
the keys, those after it. Entries appear atomically: a stage writes into a temporary folder (`.tmp-<key>-<pid>`)
that is renamed into place only after it succeeded.

A finished entry is never replaced: when two runs finish the same entry, the second keeps the first one's files
(a manifest may already name them) and throws its own away. output.json records the sha256 of every file of the
entry; an entry whose files or record are damaged is a miss, set aside and rebuilt, with one warning line.
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import json
import logging
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

from pipeline.artifacts.artifact import Artifact, atomic_write_json, sha256_file, tool_versions
from pipeline.core import bounded_json
from pipeline.core.errors import UserError
from pipeline.core.work_folders import pid_alive
from pipeline.engine.code_version import code_hash, module_file
from pipeline.stages.contract import Stage, StageOutput

log = logging.getLogger("pipeline")
RECORD = "output.json"
_WORK_FOLDER = re.compile(r"^\.(?:tmp|damaged)-[0-9a-f]+-(\d+)$")  # a run's unfinished or set-aside entry


class DamagedEntry(Exception):
    """A cache entry whose record cannot be read or whose files differ from what the record says."""


def stage_key(stage: Stage, settings: dict, input_keys: dict[str, str]) -> str:
    """The cache key of one stage run."""
    blob = json.dumps(
        {
            "stage": stage.name,
            "code": code_hash(module_file(stage.run.__module__) or Path(inspect.getsourcefile(stage.run) or "")),
            "settings": settings,
            "inputs": input_keys,
            "tools": tool_versions(stage.tools) if stage.tools else {},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _files(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `folder` except the record itself."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.relative_to(folder).as_posix() != RECORD}


def _read_entry(folder: Path) -> StageOutput:
    """The output recorded in `folder`, its files checked against their recorded sha256; raises DamagedEntry."""
    try:
        raw = bounded_json.load(folder / RECORD, RECORD)
        arts = [Artifact.from_dict(d) for d in raw["artifacts"]]
        data, files = raw["data"], raw.get("files")  # entries written before files were recorded lack them
    except UserError as exc:  # not JSON, too deep, too big: the message names output.json
        raise DamagedEntry(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DamagedEntry(f"{RECORD}: unexpected content ({type(exc).__name__}: {exc})") from None
    for a in arts:
        full = folder / a.path
        if not full.is_file():
            raise DamagedEntry(f"{a.path} missing")
        if a.sha256 and (files is None or a.path not in files) and sha256_file(full) != a.sha256:
            raise DamagedEntry(f"{a.path}: sha256 differs from the recorded one")
    for rel, digest in (files or {}).items():
        if not (folder / rel).is_file():
            raise DamagedEntry(f"{rel} missing")
        if sha256_file(folder / rel) != digest:
            raise DamagedEntry(f"{rel}: sha256 differs from the recorded one")
    return StageOutput(tuple(replace(a, path=str(folder / a.path)) for a in arts), data)


class Cache:
    """Stage outputs under `root`. With `scratch`, new entries go there instead (torchrun ranks other than 0 read
    the shared cache but never write into it). Opening it removes the temporary folders of runs that died."""

    def __init__(self, root: Path, scratch: Path | None = None, read_only: bool = False):
        self.root = root
        self.scratch = scratch
        if not read_only:  # a read-only cache (a dry run's) only answers has()
            self.remove_dead_work_folders()

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def remove_dead_work_folders(self) -> list[Path]:
        """Remove `<stage>/.tmp-<key>-<pid>` (and set-aside `.damaged-...`) folders whose process is gone."""
        removed = []
        for folder in sorted(self.root.glob("*/.*")) if self.root.is_dir() else []:
            m = _WORK_FOLDER.match(folder.name)
            if m and folder.is_dir() and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        if removed:
            log.debug("cache: removed %d temporary folder(s) of runs that died", len(removed))
        return removed

    def has(self, stage: str, key: str) -> bool:
        """Whether a finished entry exists (its files are checked only by load)."""
        return (self.entry(stage, key) / RECORD).is_file()

    def load(self, stage: str, key: str) -> StageOutput | None:
        """The cached output, or None when absent or damaged (a damaged entry is set aside and rebuilt)."""
        return self._load_folder(stage, key, self.entry(stage, key))

    def _load_folder(self, stage: str, key: str, folder: Path) -> StageOutput | None:
        if not folder.is_dir():
            return None
        try:
            return _read_entry(folder)
        except DamagedEntry as exc:
            log.warning("cache: %s/%s is damaged (%s); rebuilding it", stage, key, exc)
            aside = folder.with_name(f".damaged-{key}-{os.getpid()}")
            try:
                os.rename(folder, aside)
            except OSError:
                return None  # another run set it aside first
            shutil.rmtree(aside, ignore_errors=True)
            return None

    def new_folder(self, stage: str, key: str) -> Path:
        tmp = (self.scratch or self.root) / stage / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, stage: str, key: str, tmp: Path, output: StageOutput) -> StageOutput:
        """Record `output` (written under `tmp`) and move it into place; returns it with final paths.

        If another run finished the same entry first, that entry is kept and returned, and `tmp` is discarded.
        """
        rel = [replace(a, path=os.path.relpath(a.path, tmp)) for a in output.artifacts]
        for a in rel:
            if a.path.startswith(".."):
                raise ValueError(f"stage {stage} returned an artifact outside its folder: {a.path}")
        atomic_write_json(tmp / RECORD, {"artifacts": [a.to_dict() for a in rel], "data": output.data,
                                         "files": _files(tmp)})
        final = (self.scratch / stage / key) if self.scratch else self.entry(stage, key)
        for _ in range(2):
            try:
                os.rename(tmp, final)  # never replaces a folder that has files: a finished entry stays
                return StageOutput(tuple(replace(a, path=str(final / a.path)) for a in rel), output.data)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            existing = self._load_folder(stage, key, final)
            if existing is not None:
                log.info("[%s] another run finished this entry first; keeping its files", stage)
                self.discard(tmp)
                return existing
        raise OSError(errno.EEXIST, f"cache entry {final} keeps reappearing damaged")

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

"""Temporary folders left by a process killed with SIGKILL are removed at the next start, and only those."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pipeline.core import work_folders


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_folders_of_dead_processes_are_removed_and_all_others_kept(tmp_path: Path) -> None:
    dead = dead_pid()
    stale = tmp_path / f"pipeline-verify.{dead}.k3j2h1ab"
    kept = [tmp_path / f"pipeline-verify.{os.getpid()}.mine1234", tmp_path / "pipeline-verify.1.initpid1",
            tmp_path / "pipeline-verify.x7y8z9ab", tmp_path / f"pipeline-outputs.{dead}.otherpre",
            tmp_path / f"pipeline-verify.{dead}.has.dots"]
    for folder in [stale, *kept]:
        folder.mkdir()
        (folder / "x.npy").write_bytes(b"x")
    (tmp_path / f"pipeline-verify.{dead}.afile123").write_text("not a folder")
    new = work_folders.make("pipeline-verify.", tmp_path)
    assert new.name.startswith(f"pipeline-verify.{os.getpid()}.")
    assert not stale.exists() and all(folder.is_dir() for folder in kept)
    assert (tmp_path / f"pipeline-verify.{dead}.afile123").is_file()


def test_a_release_removes_the_folder_a_killed_release_left_beside_the_bundles(tmp_path: Path) -> None:
    from pipeline.release import bundle

    run_dir, out = tmp_path / "run", tmp_path / "out"
    run_dir.mkdir()
    (run_dir / "report.json").write_text(json.dumps({"recipe": {"name": "r", "version": "1"},
                                                     "target": {"name": "t"}}))
    stale = out / f".r-1-t.{dead_pid()}.abcd1234"
    (stale / "r-1-t").mkdir(parents=True)
    with pytest.raises(FileNotFoundError):  # no manifest.json: this release fails after making its own folder
        bundle.build(run_dir, None, out)
    assert list(out.iterdir()) == []

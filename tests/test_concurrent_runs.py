"""Runs started together on one build dir: each manifest matches the files on disk, and one run folder has one writer.

Three runs of one reduced recipe at once: two on the same target (the same run folder: one waits for the other,
naming its pid) and one on a second target with the same settings (a different run folder sharing every cache
entry up to the benchmark). Before cache entries were never replaced, the later run's commit replaced an entry the
earlier run had recorded, and that manifest's sha256 for `pt2-pruned-int8-ptq` no longer matched the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, write_recipe, write_target

from pipeline.artifacts.artifact import sha256_file

pytestmark = pytest.mark.slow

QUICK = {"train.epochs": "1", "train.max_train_samples": "2000", "data.eval_samples": "200",
         "prune.finetune.epochs": "0.5", "quantize.methods": '["ptq"]'}


def _target(folder: Path, name: str) -> Path:
    folder.mkdir()
    path = write_target(folder, runs=5, build='["onnx-fp32", "pte-int8"]')
    path.write_text(path.read_text().replace('name = "test-host"', f'name = "{name}"'))
    return path


def _start(recipe: Path, target: Path, build: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--recipe", str(recipe), "--target",
                             str(target), "--build-dir", str(build), "--no-gates"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _mismatches(manifest_path: Path) -> list[str]:
    manifest = json.loads(manifest_path.read_text())
    return [f"{a['name']}: {a['path']}" for rec in manifest["stages"] for a in rec["artifacts"]
            if not Path(a["path"]).is_file() or sha256_file(a["path"]) != a["sha256"]]


def test_concurrent_runs_on_one_build_dir_leave_manifests_that_match_the_files(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, **QUICK)
    first, second = _target(tmp_path / "a", "test-host"), _target(tmp_path / "b", "test-host-b")
    build = tmp_path / "build"
    procs = [_start(recipe, first, build), _start(recipe, first, build), _start(recipe, second, build)]
    results = [p.communicate(timeout=1800) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
    for run in ("tiny__test-host", "tiny__test-host-b"):
        manifest = build / "runs" / run / "manifest.json"
        assert _mismatches(manifest) == [], run
    waits = [(i, line) for i, (_, err) in enumerate(results[:2]) for line in err.splitlines()
             if "is being written by another run" in line]
    assert len(waits) == 1, waits  # exactly one of the two same-target runs waited, and said for whom
    waiter, line = waits[0]
    assert f"(pid {procs[1 - waiter].pid})" in line
    assert not list((build / "cache").glob("*/.tmp-*")), "a temporary folder was left behind"

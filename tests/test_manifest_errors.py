"""`pipeline report` on manifests that are not ours, and a full disk at the manifest write: one line, exit 2."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
from conftest import cli, write_recipe, write_target

from pipeline.artifacts import artifact
from pipeline.core.errors import UserError


@pytest.mark.parametrize("content, line", [
    ("not json {", "manifest.json: not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    ('{"schema": "phone-pipeline/manifest/1"}', "manifest.json: created: missing; not a run manifest (rerun the "
                                                 "pipeline to write one)"),
    ("[" * 100_000 + "]" * 100_000, "manifest.json: nested more than 64 levels deep; refused"),
    ("[1, 2]", "manifest.json: top level: expected an object; not a run manifest"),
    ('{"created": ' + "9" * 5000 + "}", "manifest.json: not valid JSON (a number of more than 4,300 digits)"),
], ids=["not-json", "no-keys", "deep", "a-list", "5000-digits"])
def test_report_on_a_garbage_manifest_is_one_line_and_exit_2(tmp_path: Path, content: str, line: str) -> None:
    (tmp_path / "manifest.json").write_text(content)
    proc = cli("report", str(tmp_path))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path}/{line}"]


def test_report_on_a_manifest_without_stages_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        '{"created": "x", "recipe": {"name": "r", "path": "p", "sha256": "s", "settings": {}}, '
        '"target": {"name": "t", "path": "p"}, "host": {}, "tools": {}, "options": {}}')
    proc = cli("report", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path}/manifest.json: stages: missing; not a run manifest (rerun the pipeline to write one)"]


def _disk_full_for(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes to temp files for `name` fail as on a full disk (the kernel's ENOSPC), other writes go through."""
    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(fd: int, *args, **kwargs):
        if f".{name}." in os.readlink(f"/proc/self/fd/{fd}"):
            os.close(fd)
            return FullDisk()
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(artifact.os, "fdopen", fdopen)


def test_a_full_disk_at_an_atomic_write_is_one_line_and_keeps_the_old_file(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("earlier")
    _disk_full_for("manifest.json", monkeypatch)
    with pytest.raises(UserError) as err:
        artifact.atomic_write_json(path, {"stages": []})
    assert str(err.value) == (f"{path}: cannot be written: No space left on device; free some space and rerun "
                              "(any earlier manifest.json is unchanged)")
    assert path.read_text() == "earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_a_full_disk_at_the_runs_manifest_write_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline import cli as cli_module
    from pipeline.engine import runner
    from pipeline.stages.contract import Stage, StageOutput

    # One quick stage stands in for the real ones: what matters is the runner's manifest write after it.
    stub = Stage("train", "nothing", (), lambda recipe, target: {}, lambda ctx: StageOutput(), cached=False,
                 trains=True)
    monkeypatch.setattr(runner, "STAGES", (stub,))
    monkeypatch.setattr(runner, "stage_key", lambda stage, settings, inputs: "0" * 20)  # its code is not ours
    _disk_full_for("manifest.json", monkeypatch)
    recipe, target = write_recipe(tmp_path), write_target(tmp_path)
    code = cli_module.main(["run", "--recipe", str(recipe), "--target", str(target), "--build-dir",
                            str(tmp_path / "build")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    manifest = tmp_path / "build" / "runs" / "tiny__test-host" / "manifest.json"
    assert code == 2
    assert err == [f"error: {manifest}: cannot be written: No space left on device; free some space and rerun "
                   "(any earlier manifest.json is unchanged)"]

"""A full disk under the build dir or the release folder is one line, exit 2, naming the folder and its free space,
not an internal error (issue 23, cause 9). The disk is a small tmpfs mounted for the test, never the real one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from pipeline import cli
from pipeline.core.errors import StageCrash, ToolError
from pipeline.engine import runner


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KB file system at tmp_path/disk (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_stage_that_fills_the_build_dir_is_one_line_naming_it(tiny_disk, tmp_path, monkeypatch, capsys):
    big = tmp_path / "model_float32.tflite"
    big.write_bytes(os.urandom(1 << 20))

    def to_tflite_filling_the_disk(execution):
        dest = execution.plan.options.build_dir / "cache" / "to_tflite" / "tflite-fp32.tflite"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:  # what the stage does with onnx2tf's output, as the runner wraps a stage's exception
            shutil.copyfile(big, dest)
        except Exception as exc:
            raise StageCrash("to_tflite") from exc

    monkeypatch.setattr(runner.Execution, "execute", to_tflite_filling_the_disk)
    monkeypatch.setattr("torch.set_num_threads", lambda n: None)  # the test process keeps its own threads
    build = tiny_disk / "build"
    assert cli.main(["run", "--build-dir", str(build)]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"error: stage to_tflite: no space left on the disk of {build}/cache/to_tflite ("), line
    assert line.endswith(" MB free); free space there or give --build-dir on a disk with room"), line


def test_a_release_that_fills_its_out_folder_is_one_line_naming_it(tiny_disk, tmp_path, monkeypatch, capsys):
    from pipeline.release import bundle

    out = tiny_disk / "release"

    def build_filling_the_disk(run_dir, recipe, out_dir, ship):
        out_dir.mkdir(parents=True, exist_ok=True)
        with (out_dir / "bundle.tar.gz").open("wb") as f:  # a write() error names no file
            f.write(os.urandom(1 << 20))

    monkeypatch.setattr(runner, "run", lambda *a, **k: tmp_path)
    monkeypatch.setattr(bundle, "build", build_filling_the_disk)
    assert cli.main(["release", "--out", str(out), "--build-dir", str(tmp_path / "build")]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"error: no space left on the disk of {out} (0.0 MB free)"), line
    assert line.endswith("free space there or give --out on a disk with room"), line


def test_onnx2tf_filling_the_disk_names_its_folder(tmp_path, monkeypatch):
    from pipeline.converters import onnx2tf_adapter

    def child_ran_out_of_space(*args, **kwargs):
        err = ToolError("to_tflite: onnx2tf: exit code 1: OSError: [Errno 28] No space left on device")
        err.detail = "Traceback ...\nOSError: [Errno 28] No space left on device"
        raise err

    monkeypatch.setattr(onnx2tf_adapter, "run", child_ran_out_of_space)
    monkeypatch.setattr(onnx2tf_adapter, "input_names", lambda path: ["input"])
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx" * 250_000)  # the copy onnx2tf is given: 1.0 MB written before the disk filled
    with pytest.raises(ToolError, match=rf"^to_tflite: onnx2tf: no space left on the disk of {tmp_path / 'w'} \("
                                        r".* MB free; it needs more than the 1\.0 MB it had written\)"):
        onnx2tf_adapter.convert(onnx, tmp_path / "w", None, int8=False)



def test_a_release_says_how_much_room_its_bundle_needs_before_it_writes_a_byte(tiny_disk, tmp_path):
    # issue 23, cause 9 asks for the folder and the space needed; the 1 MB model is written twice (folder, .tar.gz)
    from pipeline.core.errors import UserError
    from pipeline.release import bundle

    model = tmp_path / "tflite-fp32.tflite"
    model.write_bytes(os.urandom(1 << 20))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    row = {"name": "tflite-fp32", "format": "tflite", "precision": "fp32", "size_bytes": 1 << 20, "gate": "pass",
           "latency_ms": {"p50": 1.0}}
    (run_dir / "report.json").write_text(json.dumps({"recipe": {"name": "r", "version": "1"},
                                                     "target": {"name": "t"}, "artifacts": [row]}))
    record = {"name": "tflite-fp32", "format": "tflite", "precision": "fp32", "path": str(model), "sha256": ""}
    (run_dir / "manifest.json").write_text(json.dumps({"stages": [{"name": "to_tflite", "artifacts": [record]}]}))
    out = tiny_disk / "release"
    with pytest.raises(UserError) as err:
        bundle.build(run_dir, None, out)
    assert str(err.value).startswith(f"release: the bundle needs at least 2.1 MB on the disk of {out} (0."), err.value
    assert str(err.value).endswith(" MB free); free space there or give --out on a disk with room"), err.value
    assert list(out.iterdir()) == []

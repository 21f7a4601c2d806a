"""Cache entries: a finished entry is never replaced; a damaged one is a miss with one warning; dead runs' temporary
folders are removed when the cache is opened."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.artifacts.artifact import Artifact, finalize
from pipeline.engine.cache import Cache
from pipeline.stages.contract import StageOutput

KEY = "0123456789abcdef0123"


def _produce(cache: Cache, payload: bytes, key: str = KEY) -> StageOutput:
    """What a stage does: write into a new folder, then commit."""
    tmp = cache.new_folder("train", key)
    (tmp / "model.pt").write_bytes(payload)
    (tmp / "eval_logits.npy").write_bytes(b"logits " + payload)
    art = finalize(Artifact("torch-fp32", str(tmp / "model.pt"), "torch", "fp32", "NCHW", (1, 1, 28, 28)), ())
    return cache.commit("train", key, tmp, StageOutput((art,), {"accuracy": len(payload)}))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_finished_entry_is_never_replaced_by_a_second_commit(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    first = _produce(cache, b"first run")
    second = _produce(cache, b"second run, finished later")
    assert second == first  # the second run goes on with the files a manifest may already name
    assert Path(first.artifacts[0].path).read_bytes() == b"first run"
    assert [p.name for p in (tmp_path / "train").iterdir()] == [KEY]  # its own folder was thrown away


def test_a_flipped_bit_in_a_cached_file_is_a_miss_with_one_warning(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(tmp_path)
    model = Path(_produce(cache, b"weights").artifacts[0].path)
    data = bytearray(model.read_bytes())
    data[3] ^= 0x10
    model.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        assert cache.load("train", KEY) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"cache: train/{KEY} is damaged (model.pt: sha256 differs from the recorded one); rebuilding it"]
    rebuilt = _produce(cache, b"weights")  # the rebuild takes the damaged entry's place
    assert Path(rebuilt.artifacts[0].path).read_bytes() == b"weights" and cache.load("train", KEY) == rebuilt


def test_a_changed_file_that_is_not_an_artifact_is_detected_too(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    _produce(cache, b"weights")
    (tmp_path / "train" / KEY / "eval_logits.npy").write_bytes(b"changed")
    assert cache.load("train", KEY) is None


@pytest.mark.parametrize("record", ['{"artifacts": [', "", '{"artifacts": 3, "data": {}}', "[" * 100_000])
def test_a_corrupt_output_json_is_a_miss_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          record: str) -> None:
    cache = Cache(tmp_path)
    _produce(cache, b"weights")
    (tmp_path / "train" / KEY / "output.json").write_text(record)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        assert cache.load("train", KEY) is None
    assert len(caplog.records) == 1 and "output.json" in caplog.records[0].getMessage()
    assert not (tmp_path / "train" / KEY).exists()


def test_an_entry_written_before_files_were_recorded_is_still_read(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    out = _produce(cache, b"weights")
    record = tmp_path / "train" / KEY / "output.json"
    raw = json.loads(record.read_text())
    del raw["files"]
    record.write_text(json.dumps(raw))
    assert cache.load("train", KEY) == out


def test_opening_the_cache_removes_temporary_folders_of_dead_runs_only(tmp_path: Path) -> None:
    other_run = subprocess.Popen(["sleep", "30"])
    try:
        dead = tmp_path / "to_tflite" / f".tmp-{KEY}-{_dead_pid()}"
        aside = tmp_path / "to_tflite" / f".damaged-{KEY}-{_dead_pid()}"
        live = tmp_path / "to_tflite" / f".tmp-{KEY}-{other_run.pid}"
        own = tmp_path / "train" / f".tmp-{KEY}-{os.getpid()}"
        for folder in (dead, aside, live, own):
            folder.mkdir(parents=True)
            (folder / "partial.tflite").write_bytes(b"half")
        Cache(tmp_path)
        assert not dead.exists() and not aside.exists() and live.exists() and own.exists()
    finally:
        other_run.kill()
        other_run.wait()

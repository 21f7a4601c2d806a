"""`pipeline verify` on hostile bundle content: each case is exit 2 and one line naming the file, never a crash.

The bundle here is small and made in seconds: a real XNNPACK .pte of a 16 -> 3 linear model on 4x4 grey pictures,
its outputs recorded by the same child-process runner verify uses.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import cli

from pipeline.artifacts.preprocess import InputSpec
from pipeline.core.errors import UserError
from pipeline.evidence.hostile_cases import NAME, OUTPUTS, PTE, good_bundle  # the evidence tool's bundle: one builder
from pipeline.release import archive, checksums, samples
from pipeline.release.verify import verify


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return good_bundle(tmp_path_factory.mktemp("bundle") / NAME)


def _copy(good: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good, tmp_path / NAME))


def _one_line_exit_2(bundle: Path) -> str:
    """Run verify as a user does, on the bundle packed as a .tar.gz; returns its one line."""
    checksums.write(bundle)  # as a careful attacker would: the sums match
    packed = bundle.parent / "bundle.tar.gz"
    packed.write_bytes(archive.tar_gz_bytes(bundle, NAME))
    proc = cli("verify", str(packed))
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: verify: bundle.tar.gz: "), proc.stderr[-3000:]
    return lines[0].removeprefix("error: verify: bundle.tar.gz: ")


def _png_header_only(width: int, height: int) -> bytes:
    """A grey PNG that declares width x height and carries one compressed row (PIL reads the header first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(width + 1)))
            + chunk(b"IEND", b""))


def test_the_small_bundle_verifies(good: Path) -> None:
    verdict = verify(good)
    assert [(a.name, a.samples) for a in verdict.artifacts] == [("pte-fp32", 4)]


def test_a_pte_whose_runtime_aborts_is_one_line_not_a_dead_verifier(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    data = bytearray((root / PTE).read_bytes())
    data[5] ^= 0xFF  # inside the flatbuffer's identifier: ExecuTorch's bindings terminate the process on it
    (root / PTE).write_bytes(bytes(data))
    meta = json.loads((root / "metadata.json").read_text())
    meta["artifacts"][0]["sha256"] = hashlib.sha256(data).hexdigest()
    (root / "metadata.json").write_text(json.dumps(meta))
    line = _one_line_exit_2(root)
    assert line.startswith(f"{PTE}: the pte runtime cannot run it (killed by SIGABRT: "), line


def test_a_20000x20000_sample_picture_is_refused_before_decoding(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    (root / "samples" / "0001.png").write_bytes(_png_header_only(20000, 20000))
    assert _one_line_exit_2(root) == ("samples/0001.png: refused before decoding: Image size (400000000 pixels) "
                                      "exceeds limit of 178956970 pixels, could be decompression bomb DOS attack.")


def test_a_sample_picture_under_pils_limit_but_over_ours_is_refused_before_decoding(good: Path,
                                                                                     tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    (root / "samples" / "0001.png").write_bytes(_png_header_only(5000, 5000))
    assert _one_line_exit_2(root) == ("samples/0001.png: 5000x5000 pixels, more than the 4,194,304 a sample "
                                      "picture may have; refused before decoding")


def test_a_sample_picture_that_is_not_a_picture_is_one_line(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    (root / "samples" / "0002.png").write_bytes(b"GIF89a but not really")
    assert _one_line_exit_2(root).startswith("samples/0002.png: unreadable sample picture (cannot identify")


def test_recorded_outputs_declaring_10_to_the_12_rows_are_refused_from_the_header(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    with (root / OUTPUTS).open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 3)})
        f.write(bytes(48))
    assert _one_line_exit_2(root) == (f"{OUTPUTS}: declares float32 [1000000000000, 3]; expected float32 with 4 rows "
                                      "(one row per sample)")


def test_recorded_outputs_shorter_than_their_header_are_refused(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    (root / OUTPUTS).write_bytes((root / OUTPUTS).read_bytes()[:-4])
    assert _one_line_exit_2(root) == f"{OUTPUTS}: 44 data bytes, the header declares 48"


def test_metadata_nested_100000_deep_is_refused_before_parsing(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    (root / "metadata.json").write_text('{"schema": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert _one_line_exit_2(root) == "metadata.json: nested more than 64 levels deep; refused"


def test_metadata_bigger_than_its_limit_is_refused(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    (root / "metadata.json").write_text('{"pad": "' + "x" * (5 << 20) + '"}')
    assert _one_line_exit_2(root) == "metadata.json: more than 4,194,304 bytes; refused"


def test_an_input_side_too_big_to_allocate_is_a_schema_error(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    meta = json.loads((root / "metadata.json").read_text())
    meta["input"]["height"] = 10**9
    (root / "metadata.json").write_text(json.dumps(meta))
    assert _one_line_exit_2(root) == "metadata.json: input.height: expected 1..4096"


def test_metadata_with_a_5000_digit_integer_is_one_line(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    meta = (root / "metadata.json").read_text()
    (root / "metadata.json").write_text(meta.replace('"classes": 3', '"classes": ' + "9" * 5000))
    assert _one_line_exit_2(root) == "metadata.json: not valid JSON (a number of more than 4,300 digits)"


def test_verify_removes_the_temporary_folders_a_killed_verify_left(good: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    packed, tmp = tmp_path / "bundle.tar.gz", tmp_path / "tmp"
    packed.write_bytes(archive.tar_gz_bytes(good, NAME))
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "verify", str(packed)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp.glob(f"pipeline-outputs.{proc.pid}.*")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = sorted(p.name.split(".")[0] for p in tmp.glob(f"pipeline-*.{proc.pid}.*"))
    assert left == ["pipeline-outputs", "pipeline-verify"]  # what kill -9 leaves
    again = subprocess.run([sys.executable, "-m", "pipeline", "verify", str(packed)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert list(tmp.glob("pipeline-*")) == []


def _set_input(root: Path, height: int, width: int, channels: int, count: int) -> None:
    """Rewrite metadata.json to declare a height x width x channels input and `count` samples that all name the
    first (4x4) picture: the shape of a memory bomb, a few hundred bytes of JSON."""
    meta = json.loads((root / "metadata.json").read_text())
    meta["input"] = {"height": height, "width": width, "channels": channels, "mean": [0.5] * channels,
                     "std": [0.5] * channels}
    meta["artifacts"][0]["input_shape"] = [1, channels, height, width]
    meta["samples"] = [dict(meta["samples"][0]) for _ in range(count)]
    (root / "metadata.json").write_text(json.dumps(meta))


def test_metadata_declaring_a_4096x4096x3_input_for_40_samples_is_refused_before_decoding(good: Path,
                                                                                            tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    _set_input(root, 4096, 4096, 3, 40)  # decoded, 40 upscaled copies of one picture: 8 GB of float32
    assert _one_line_exit_2(root) == ("metadata.json: input: 4096x4096x3 is 50,331,648 values per sample, more than "
                                      "the 3,145,728 a bundle's input may have")


def test_more_samples_than_a_bundle_may_list_are_refused_from_the_metadata(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    _set_input(root, 4, 4, 1, 65)
    checksums.write(root)
    with pytest.raises(UserError, match=r"^verify: hostile-0.1.0-host: metadata.json: samples: 65 samples, more "
                                        r"than the 64 a bundle may list$"):
        verify(root)


def test_samples_whose_inputs_add_up_past_the_limit_are_refused_from_the_metadata(good: Path, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    root = _copy(good, tmp_path)
    _set_input(root, 1024, 1024, 3, 17)  # each within the per-sample limit, together 204 MB of float32
    checksums.write(root)
    monkeypatch.setattr(samples, "read_picture", _no_decoding)
    with pytest.raises(UserError, match=r"metadata.json: samples: 17 samples of 1024x1024x3 are 53,477,376 input "
                                        r"values, more than the 50,331,648 verify may decode$"):
        verify(root)


def _no_decoding(path: Path, rel: str):
    raise AssertionError(f"{rel} was decoded before the cheaper checks")


def test_recorded_outputs_are_checked_before_any_sample_picture_is_decoded(good: Path, tmp_path: Path,
                                                                           monkeypatch) -> None:
    root = _copy(good, tmp_path)
    meta = json.loads((root / "metadata.json").read_text())
    meta["samples"] = meta["samples"] * 10  # 40 rows wanted, the .npy has 4
    (root / "metadata.json").write_text(json.dumps(meta))
    checksums.write(root)
    monkeypatch.setattr(samples, "read_picture", _no_decoding)
    with pytest.raises(UserError, match=rf"{OUTPUTS}: declares float32 \[4, 3\]; expected float32 with 40 rows"):
        verify(root)


def test_sample_pictures_are_decoded_one_at_a_time(good: Path) -> None:
    import tracemalloc

    spec = InputSpec(height=512, width=512, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)
    entries = [{"file": "samples/0000.png", "label": 0}] * 16  # 4x4 grey, upscaled to 512x512x3 each time
    tracemalloc.start()
    try:
        x = samples.inputs(good, entries, spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.shape == (16, 3, 512, 512)
    assert peak < 1.5 * x.nbytes, f"peak {peak:,} bytes for {x.nbytes:,} bytes of inputs"


def test_a_file_name_holding_a_newline_cannot_forge_a_second_line(good: Path, tmp_path: Path) -> None:
    root = _copy(good, tmp_path)
    (root / "samples" / "x\nerror: fine: all good").write_bytes(b"slipped in")
    proc = cli("verify", str(root))
    assert (proc.returncode, proc.stderr) == (2, "error: verify: hostile-0.1.0-host: samples/x\\nerror: fine: all "
                                                 "good: not listed in SHA256SUMS\n")


def test_archive_member_names_with_a_newline_or_8_kb_are_shown_escaped_and_cut(tmp_path: Path) -> None:
    # (a 64 KB name needs a pax header larger than any header may be: the raw header check refuses it first)
    from test_bundle_archive import NAME as TOP
    from test_bundle_archive import _archive_with, _file

    lines = []
    for i, name in enumerate([f"{TOP}/x\nerror: fine: all good", f"{TOP}/" + "n" * 8000]):
        proc = cli("verify", str(_archive_with(tmp_path / str(i), [_file(name, b"x")])))
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and len(proc.stderr) < 400, proc.stderr[:500]
        lines.append(proc.stderr)
    assert lines[0] == (f"error: verify: bundle.tar.gz: {TOP}/x\\nerror: fine: all good: refused: not listed in "
                        "SHA256SUMS\n")
    assert "nnnn...(+" in lines[1], lines[1]

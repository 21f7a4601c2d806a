"""Taking a bundle into the app (`make android-demo`, the APK build): checked first, links never followed."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_android_demo import GREY_28, photos, write_fixture_bundle

from pipeline.android.apk_build import build_apk
from pipeline.android.cli import main
from pipeline.core.errors import UserError
from pipeline.release import archive, checksums
from pipeline.release.bundle_copy import copy_verified

SECRET = "root:$6$not-really-a-hash:19000:0:99999:7:::\n"


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "fashion-0.1.0-host"
    write_fixture_bundle(root, GREY_28, dict(list(photos().items())[:2]))
    return root


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    """Stands in for /etc/shadow: a file outside the bundle that must never reach the app."""
    path = tmp_path / "shadow"
    path.write_text(SECRET)
    return path


def _holds_secret(folder: Path) -> bool:
    return any(p.is_file() and SECRET in p.read_text(errors="replace") for p in folder.rglob("*"))


def test_a_link_to_a_secret_file_is_refused_and_nothing_is_copied(
    bundle: Path, secret: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (bundle / "SECRET").symlink_to(secret)
    dest = tmp_path / "assets" / "bundle"
    assert main(["copy-bundle", str(bundle), "--dest", str(dest)]) == 2
    assert capsys.readouterr().err == (f"error: copy-bundle: SECRET: refused: a symbolic link (to {str(secret)!r}); "
                                       "a bundle holds plain files only\n")
    assert not dest.exists()
    assert not (tmp_path / "assets").exists()  # the folder made for the copy goes with the refused copy


def test_a_linked_folder_is_refused_too(bundle: Path, secret: Path, tmp_path: Path) -> None:
    (bundle / "samples" / "more").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(UserError, match=r"samples/more: refused: a symbolic link"):
        copy_verified(bundle, tmp_path / "dest", "copy-bundle")
    assert not (tmp_path / "dest").exists()


def test_a_failed_copy_leaves_the_previous_assets_alone(bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    copy_verified(bundle, dest, "copy-bundle")
    before = sorted(p.relative_to(dest) for p in dest.rglob("*"))
    (bundle / "models" / "tflite-fp32.tflite").write_bytes(b"swapped model")
    checksums.write(bundle)  # the sums match; the metadata's sha256 does not
    with pytest.raises(UserError, match="tflite-fp32.tflite: sha256 differs from metadata.json"):
        copy_verified(bundle, dest, "copy-bundle")
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_a_file_sha256sums_does_not_list_is_refused(bundle: Path, tmp_path: Path) -> None:
    (bundle / "extra.txt").write_text("slipped in")
    with pytest.raises(UserError, match="extra.txt: not listed in SHA256SUMS"):
        copy_verified(bundle, tmp_path / "dest", "copy-bundle")


def test_a_bundle_archive_is_taken_too(bundle: Path, tmp_path: Path) -> None:
    packed = tmp_path / "bundle.tar.gz"
    packed.write_bytes(archive.tar_gz_bytes(bundle, bundle.name))
    dest = copy_verified(packed, tmp_path / "dest", "copy-bundle")
    assert json.loads((dest / "metadata.json").read_text())["schema"] == "phone-pipeline/bundle/1"
    assert checksums.check(dest, "test") > 0


def test_a_destination_that_is_a_link_is_replaced_not_written_through(bundle: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the app's")
    dest = tmp_path / "dest"
    dest.symlink_to(elsewhere, target_is_directory=True)
    copy_verified(bundle, dest, "copy-bundle")
    assert not dest.is_symlink() and (dest / "metadata.json").is_file()
    assert [p.name for p in elsewhere.iterdir()] == ["keep.txt"]


def test_the_apk_build_refuses_a_linked_bundle_before_running_any_tool(
    bundle: Path, secret: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.android.apk_build as apk_build

    def no_tools() -> None:
        raise AssertionError("the toolchain was reached with an unchecked bundle")

    monkeypatch.setattr(apk_build, "ensure_toolchain", no_tools)
    os.symlink(secret, bundle / "models" / "SECRET")
    with pytest.raises(UserError, match=r"^apk: models/SECRET: refused: a symbolic link"):
        build_apk(tmp_path / "out" / "demo.apk", bundle=bundle)
    assert not _holds_secret(tmp_path / "out")


def test_a_copy_removes_the_folder_a_killed_copy_left_beside_the_destination(bundle: Path, tmp_path: Path) -> None:
    from test_work_folders import dead_pid

    stale = tmp_path / f".dest.{dead_pid()}.abcd1234"
    (stale / "staged").mkdir(parents=True)
    copy_verified(bundle, tmp_path / "dest", "copy-bundle")
    assert not stale.exists()


def test_metadata_declaring_a_huge_input_for_many_samples_is_refused_before_any_picture_is_decoded(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.release import samples

    def no_decoding(path: Path, rel: str) -> None:
        raise AssertionError(f"{rel} was decoded")

    monkeypatch.setattr(samples, "read_picture", no_decoding)
    meta = json.loads((bundle / "metadata.json").read_text())
    meta["input"] = {"height": 4096, "width": 4096, "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3}
    for a in meta["artifacts"]:
        a["input_shape"] = [1, 3, 4096, 4096] if a["layout"] == "NCHW" else [1, 4096, 4096, 3]
    meta["samples"] = [dict(meta["samples"][0]) for _ in range(40)]  # one 28x28 picture named 40 times
    (bundle / "metadata.json").write_text(json.dumps(meta))
    checksums.write(bundle)
    dest = tmp_path / "assets" / "bundle"
    assert main(["copy-bundle", str(bundle), "--dest", str(dest)]) == 2
    assert capsys.readouterr().err == ("error: copy-bundle: metadata.json: input: 4096x4096x3 is 50,331,648 values "
                                       "per sample, more than the 3,145,728 a bundle's input may have\n")
    assert not dest.exists()


def _copy_bundle_with_a_file_size_limit(bundle: Path, dest: Path, limit: int) -> subprocess.CompletedProcess:
    """copy-bundle as a user runs it, in a process that may write no file past `limit` bytes (a write beyond it
    fails with EFBIG, as on a full disk): a copy that does not check sizes first fails on the way."""
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return subprocess.run([sys.executable, "-m", "pipeline.android", "copy-bundle", str(bundle), "--dest", str(dest)],
                          capture_output=True, text=True, preexec_fn=limited, timeout=120)


def test_a_3_gb_sparse_file_is_refused_from_its_size_before_a_byte_is_copied(bundle: Path, tmp_path: Path) -> None:
    with (bundle / "models" / "huge.bin").open("wb") as f:
        f.truncate(3 << 30)  # sparse: no disk used
    dest = tmp_path / "assets" / "bundle"
    proc = _copy_bundle_with_a_file_size_limit(bundle, dest, 16 << 20)
    assert (proc.returncode, proc.stderr) == (2, "error: copy-bundle: models/huge.bin: refused: 3,221,225,472 bytes, "
                                                 "more than the 1,073,741,824 a bundle file may have\n")
    assert not (tmp_path / "assets").exists()  # nothing left, not even the folder made for the copy


def test_files_adding_up_past_the_bundle_limit_are_refused_before_the_last_is_copied(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 1 << 20)
    with (bundle / "models" / "big.bin").open("wb") as f:
        f.truncate(1 << 20)
    with pytest.raises(UserError, match=r"^copy-bundle: models/big.bin: refused: the files add up to more than "
                                        r"1,048,576 bytes$"):
        copy_verified(bundle, tmp_path / "dest", "copy-bundle")
    assert not (tmp_path / "dest").exists() and [p.name for p in tmp_path.iterdir()] == ["fashion-0.1.0-host"]


class _FullDisk:
    """A file being written on a disk that fills after `room` bytes."""

    def __init__(self, real, room: int):
        self.real, self.room = real, room

    def write(self, data: bytes) -> int:
        if self.real.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real.write(data)

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.close()


def test_a_full_disk_during_the_copy_is_one_line_naming_the_file_and_leaves_nothing_behind(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Path.open

    def open_on_a_small_disk(self: Path, mode: str = "r", *args, **kwargs):
        f = real_open(self, mode, *args, **kwargs)
        return _FullDisk(f, 100) if mode == "xb" else f

    monkeypatch.setattr(Path, "open", open_on_a_small_disk)
    dest = tmp_path / "assets" / "bundle"
    assert main(["copy-bundle", str(bundle), "--dest", str(dest)]) == 2
    assert capsys.readouterr().err == (f"error: copy-bundle: SHA256SUMS: cannot be copied into {dest}: No space left "
                                       "on device\n")
    assert not (tmp_path / "assets").exists()  # nothing left, not even the folder made for the copy


def test_a_destination_under_a_file_is_one_line_naming_both(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "assets").write_text("a file where a folder should be")
    dest = tmp_path / "assets" / "bundle"
    assert main(["copy-bundle", str(bundle), "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: copy-bundle: cannot copy {bundle} into {dest}: ") and err.count("\n") == 1, err

"""Extraction of bundle archives from outside: headers checked before anything is written, members streamed."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

import pytest
from conftest import cli

from pipeline.core.errors import UserError
from pipeline.release import archive, checksums, tar_headers

NAME = "tiny-0.1.0-test-host"


def _tree(root: Path) -> Path:
    """A small bundle-shaped folder with its SHA256SUMS (safe_extract does not read the documents)."""
    (root / "models").mkdir(parents=True)
    (root / "metadata.json").write_text('{"schema": "phone-pipeline/bundle/1"}\n')
    (root / "models" / "m.tflite").write_bytes(b"model bytes")
    checksums.write(root)
    return root


def _tar_entries(tar_bytes: bytes) -> bytes:
    """A tar stream without its end-of-archive blocks, so more members can follow."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        last = tar.getmembers()[-1]
        end = last.offset_data + (-(-last.size // 512) * 512)
    return tar_bytes[:end]


def _archive_with(tmp_path: Path, extra: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """The small bundle's archive with `extra` members appended after the good ones."""
    good = gzip.decompress(archive.tar_gz_bytes(_tree(tmp_path / "src" / NAME), NAME))
    raw = io.BytesIO(good)
    with tarfile.open(fileobj=raw, mode="a") as tar:
        for info, payload in extra:
            tar.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def _file(name: str, payload: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def _zero_bomb(tmp_path: Path, size: int = 2 << 30) -> Path:
    """The good members, then a member of `size` zero bytes: a few MB on disk. gzip streams may be concatenated,
    so the zeros are one compressed block of 64 MiB repeated instead of 2 GiB put through zlib here."""
    good = gzip.decompress(archive.tar_gz_bytes(_tree(tmp_path / "src" / NAME), NAME))
    info = tarfile.TarInfo(f"{NAME}/models/zeros.bin")
    info.size = size
    head = _tar_entries(good) + info.tobuf(format=tarfile.PAX_FORMAT)
    block = 64 << 20
    zeros = gzip.compress(bytes(block), compresslevel=9)
    path = tmp_path / "bomb.tar.gz"
    with path.open("wb") as f:
        f.write(gzip.compress(head))
        for _ in range(size // block):
            f.write(zeros)
        f.write(gzip.compress(bytes(1024)))  # end-of-archive blocks
    return path


def _refused(path: Path, dest: Path) -> str:
    dest.mkdir()
    with pytest.raises(UserError) as err:
        archive.safe_extract(path, dest)
    assert list(dest.iterdir()) == [], "something was written before the refusal"
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_good_archive_extracts_to_the_same_files(tmp_path: Path) -> None:
    path = _archive_with(tmp_path, [])
    top = archive.safe_extract(path, tmp_path / "dest")
    assert checksums.check(top, "test") == 2
    assert (top / "models" / "m.tflite").read_bytes() == b"model bytes"


def test_a_2gb_member_is_refused_from_its_header_before_anything_is_written(tmp_path: Path) -> None:
    bomb = _zero_bomb(tmp_path)
    assert bomb.stat().st_size < 4 << 20
    start = time.monotonic()
    message = _refused(bomb, tmp_path / "dest")
    assert time.monotonic() - start < 10
    assert message == (f"verify: bomb.tar.gz: {NAME}/models/zeros.bin: refused: 2,147,483,648 bytes, more than "
                       f"the {archive.MAX_MEMBER_BYTES:,} a bundle member may have")


def test_members_that_add_up_past_the_limit_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 200)
    path = _archive_with(tmp_path, [_file(f"{NAME}/models/big.bin", bytes(300))])
    assert "refused: the members add up to more than 200 bytes" in _refused(path, tmp_path / "dest")


def test_a_member_sha256sums_does_not_list_is_refused_before_writing(tmp_path: Path) -> None:
    path = _archive_with(tmp_path, [_file(f"{NAME}/models/extra.bin", b"not listed")])
    assert _refused(path, tmp_path / "dest") == (f"verify: bundle.tar.gz: {NAME}/models/extra.bin: refused: not "
                                                 "listed in SHA256SUMS")


def test_a_member_inside_a_file_is_refused_with_one_line(tmp_path: Path) -> None:
    path = _archive_with(tmp_path, [_file(f"{NAME}/metadata.json/x", b"x")])
    assert _refused(path, tmp_path / "dest") == (f"verify: bundle.tar.gz: {NAME}/metadata.json/x: refused: "
                                                 f"{NAME}/metadata.json is a file in this archive, not a folder")


def test_an_archive_without_sha256sums_is_refused(tmp_path: Path) -> None:
    raw = io.BytesIO()
    info, payload = _file(f"{NAME}/metadata.json", b"{}")
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(info, io.BytesIO(payload))
    path = tmp_path / "nosums.tar.gz"
    path.write_bytes(gzip.compress(raw.getvalue()))
    assert _refused(path, tmp_path / "dest") == f"verify: nosums.tar.gz: {NAME}/SHA256SUMS missing"


def test_verify_refuses_the_zero_bomb_in_one_line_with_exit_2(tmp_path: Path) -> None:
    proc = cli("verify", str(_zero_bomb(tmp_path)))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: verify: bomb.tar.gz: {NAME}/models/zeros.bin: refused: 2,147,483,648 bytes, more than the "
        f"{archive.MAX_MEMBER_BYTES:,} a bundle member may have"]


def test_the_zero_bomb_really_holds_2gb_of_zeros(tmp_path: Path) -> None:
    # The bomb above must be a real one (not a truncated archive), or the refusal tests would prove nothing.
    bomb = _zero_bomb(tmp_path, size=256 << 20)
    with tarfile.open(bomb) as tar:
        member = tar.getmember(f"{NAME}/models/zeros.bin")
        src = tar.extractfile(member)
        assert src is not None
        seen = sum(len(chunk) for chunk in iter(lambda: src.read(16 << 20), b""))
    assert seen == member.size == 256 << 20


def test_a_member_named_dot_is_refused_with_one_line(tmp_path: Path) -> None:
    # found by tests/test_fuzz.py: "." has no path parts and crashed the layout check with an IndexError
    info = tarfile.TarInfo(".")
    info.size = 1
    assert "not a normal path" in _refused(_archive_with(tmp_path, [(info, b"0")]), tmp_path / "dest")


def _extended(kind: bytes, body: bytes, declared: int | None = None) -> bytes:
    """A raw extended header (pax `x`/`g`, GNU `L`/`K`) declaring `declared` bytes (len(body) unless given), then
    `body` padded to whole blocks: what tarfile would parse, written without it."""
    info = tarfile.TarInfo("././@LongLink" if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
                           else "././@PaxHeader")
    info.type, info.size = kind, len(body) if declared is None else declared
    return info.tobuf(tarfile.GNU_FORMAT) + body + bytes(-len(body) % 512)


def _raw_archive(tmp_path: Path, raw: bytes, name: str = f"{NAME}/models/x.bin") -> Path:
    """The small bundle's members, then the `raw` header bytes and a one-byte member `name`, gzipped."""
    good = gzip.decompress(archive.tar_gz_bytes(_tree(tmp_path / "src" / NAME), NAME))
    info, payload = _file(name, b"x")
    path = tmp_path / "raw.tar.gz"
    path.write_bytes(gzip.compress(_tar_entries(good) + raw + info.tobuf(tarfile.GNU_FORMAT) + payload.ljust(512, b"\0")
                                   + bytes(1024)))
    return path


def _pax_path_of(size: int) -> bytes:
    """The record of CVE-2024-6232's reproducer: one `path=999...` record of `size` bytes."""
    return (b"%d path=" % size).ljust(size - 1, b"9") + b"\n"


@pytest.mark.parametrize("size", [64 << 10, 1 << 20])
def test_a_huge_pax_header_is_refused_before_tarfile_parses_it(tmp_path: Path, size: int) -> None:
    path = _raw_archive(tmp_path, _extended(tarfile.XHDTYPE, _pax_path_of(size)))
    start = time.monotonic()
    message = _refused(path, tmp_path / "dest")
    assert time.monotonic() - start < 1
    assert message == (f"verify: raw.tar.gz: refused: a pax extended header at byte 4,096 declares {size:,} bytes, "
                       f"more than the {tar_headers.MAX_EXTENDED_BYTES:,} a header may have")


def test_a_gnu_long_name_of_64mb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = _raw_archive(tmp_path, _extended(tarfile.GNUTYPE_LONGNAME, b"a" * (64 << 20)))
    assert path.stat().st_size < 1 << 20
    start = time.monotonic()
    message = _refused(path, tmp_path / "dest")
    assert time.monotonic() - start < 1
    assert message == ("verify: raw.tar.gz: refused: a GNU long name at byte 4,096 declares 67,108,864 bytes, "
                       f"more than the {tar_headers.MAX_EXTENDED_BYTES:,} a header may have")


def test_a_gnu_long_name_declaring_1_5gb_is_refused_from_its_header(tmp_path: Path) -> None:
    path = _raw_archive(tmp_path, _extended(tarfile.GNUTYPE_LONGNAME, b"a" * 512, declared=1536 << 20))
    assert "a GNU long name at byte 4,096 declares 1,610,612,736 bytes" in _refused(path, tmp_path / "dest")


@pytest.mark.parametrize(("body", "problem"), [
    (b"2 " * 3000 + b"x=1\n", "a malformed record at byte 0"),  # lengths that do not add up: quadratic in tarfile
    (b"50 path=" + b"7" * 41 + b"\n", "a run of more than 32 digits"),  # what tarfile's search is quadratic in
    (b"11 size=99\n", "a 'size' record (it moves where the next header is read)"),
    (b"22 GNU.sparse.major=1\n", "a 'GNU.sparse.major' record (it moves where the next header is read)"),
])
def test_pax_records_tarfile_would_misread_are_refused(tmp_path: Path, body: bytes, problem: str) -> None:
    message = _refused(_raw_archive(tmp_path, _extended(tarfile.XHDTYPE, body)), tmp_path / "dest")
    assert message == f"verify: raw.tar.gz: refused: the pax extended header at byte 4,096 holds {problem}"


def test_a_chain_of_1000_extended_headers_is_refused(tmp_path: Path) -> None:
    # tarfile recurses once per header of a chain: 1000 of them ended in RecursionError
    raw = _extended(tarfile.XHDTYPE, b"13 mtime=123\n") * 1000
    assert _refused(_raw_archive(tmp_path, raw), tmp_path / "dest") == (
        f"verify: raw.tar.gz: refused: more than {tar_headers.MAX_CHAIN} extended headers in a row at byte 8,192")


def test_a_bundle_whose_long_names_need_pax_headers_still_extracts(tmp_path: Path) -> None:
    name = "n" * 120 + "-0.1.0-host"  # every member's path is over tar's 100 bytes: one pax header each
    path = tmp_path / "long.tar.gz"
    path.write_bytes(archive.tar_gz_bytes(_tree(tmp_path / "src" / name), name))
    with tarfile.open(path) as tar:
        assert all("path" in m.pax_headers for m in tar.getmembers())
    assert checksums.check(archive.safe_extract(path, tmp_path / "dest"), "test") == 2


def test_copy_bundle_refuses_a_huge_pax_header_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline.android.cli import main

    path = _raw_archive(tmp_path, _extended(tarfile.GNUTYPE_LONGNAME, b"a" * 512, declared=1536 << 20))
    assert main(["copy-bundle", str(path), "--dest", str(tmp_path / "assets")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: copy-bundle: refused: a GNU long name at byte 4,096 declares 1,610,612,736 bytes, more than the "
        f"{tar_headers.MAX_EXTENDED_BYTES:,} a header may have"]
    assert not (tmp_path / "assets").exists()


@pytest.mark.parametrize("value", ["1" * 23, "4294967296", "-1", "1e9", "١٢", ""])
def test_a_source_date_epoch_tar_and_gzip_cannot_store_stops_release_before_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, value: str) -> None:
    from pipeline import cli

    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    assert cli.main(["release", "--recipe", str(tmp_path / "none.toml"), "--build-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: SOURCE_DATE_EPOCH={value!r}: expected a whole number of seconds from 0 to 4,294,967,295 (unset it, "
        "or set it to the time of the last commit)"]


def _archive_dated(tmp_path: Path, mtime: float) -> Path:
    """The small bundle packed with every member's mtime set to `mtime` (pax stores any number)."""
    from pipeline.evidence.hostile_cases import bundle_archive_dated

    return bundle_archive_dated(_tree(tmp_path / "src" / NAME), tmp_path / "dated.tar.gz", mtime)


@pytest.mark.parametrize("mtime", [10**22 + 1, -(10**22), 1e300])
def test_a_member_dated_past_what_tar_stores_is_refused_not_an_overflow(tmp_path: Path, mtime: float) -> None:
    message = _refused(_archive_dated(tmp_path, mtime), tmp_path / "dest")
    assert message.startswith(f"verify: dated.tar.gz: {NAME}: refused: modification time ")
    assert message.endswith(" is outside 0..4,294,967,295")


def test_copy_bundle_refuses_a_member_dated_past_what_tar_stores(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    from pipeline.android.cli import main

    assert main(["copy-bundle", str(_archive_dated(tmp_path, 10**22)), "--dest", str(tmp_path / "assets")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: copy-bundle: {NAME}: refused: modification time 1e+22 is outside 0..4,294,967,295"]

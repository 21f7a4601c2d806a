"""Reproducible .tar.gz writing and refuse-first extraction of release bundles.

Writing: entries sorted, mtime 0 (or SOURCE_DATE_EPOCH), uid/gid 0 with empty user and group names, mode 0644 for
files and 0755 for folders, gzip header with mtime 0 and no file name, so the same tree gives the same bytes.
Extraction: every member header is checked before anything is written (no absolute paths, no `..`, no links or device
files, nothing that would land outside the destination, sizes within limits, every file listed in SHA256SUMS), then
members are streamed out through tarfile's "data" extraction filter (PEP 706) wrapped in those same rules.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from pipeline.core.errors import UserError, shown
from pipeline.release import checksums, tar_headers

FILE_MODE, DIR_MODE = 0o644, 0o755


MAX_MTIME = 2**32 - 1  # what gzip's 32-bit field and tar's 11 octal digits both store: 2106-02-07


def source_date_epoch() -> int:
    """The fixed mtime for bundle entries: SOURCE_DATE_EPOCH when set (reproducible-builds.org), else 0; UserError
    when it is not a whole number of seconds that tar and gzip can store (a 23-digit value made bundles that
    tarfile could not extract)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not (value.isascii() and value.isdigit() and len(value) <= 10 and int(value) <= MAX_MTIME):
        raise UserError(f"SOURCE_DATE_EPOCH={shown(value)!r}: expected a whole number of seconds from 0 to "
                        f"{MAX_MTIME:,} (unset it, or set it to the time of the last commit)")
    return int(value)


def _info(name: str, mtime: int, size: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
    if size is None:
        info.type, info.mode = tarfile.DIRTYPE, DIR_MODE
    else:
        info.size, info.mode = size, FILE_MODE
    return info


def tar_gz_bytes(root: Path, prefix: str) -> bytes:
    """The tree under `root` as a reproducible .tar.gz whose members all start with `prefix/`."""
    mtime = source_date_epoch()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(prefix, mtime, None))
        for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise UserError(f"release: {path}: only plain files and folders go into a bundle")
            if path.is_dir():
                tar.addfile(_info(name, mtime, None))
            else:
                data = path.read_bytes()
                tar.addfile(_info(name, mtime, len(data)), io.BytesIO(data))
    out = io.BytesIO()
    # filename="" keeps the temp file's name out of the gzip header; mtime=0 keeps the clock out.
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# Limits for a bundle from outside, checked against each member's header before its data is read. A phone model is
# tens of MB; these leave room for big ones and refuse an archive that would fill the disk.
MAX_MEMBERS = 10_000
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 2 << 30
MAX_SUMS_BYTES = 1 << 20


def _member_problem(member: tarfile.TarInfo, dest: Path) -> str | None:
    """Our rules, stricter than tarfile's "data" filter: no links at all, no sparse files, normal names only."""
    name = member.name
    if name.startswith("/") or PurePosixPath(name).is_absolute() or (name[1:2] == ":" and name[:1].isalpha()):
        return "absolute path"
    if ".." in PurePosixPath(name).parts or "\\" in name:
        return "path leaves the bundle ('..' or a backslash)"
    if member.issym() or member.islnk():
        return f"{'symbolic' if member.issym() else 'hard'} link to {shown(repr(member.linkname))}"
    if not (member.isfile() or member.isdir()) or member.issparse():
        return "not a plain file or folder (device, fifo, sparse or other special file)"
    if not PurePosixPath(name).parts or str(PurePosixPath(name)) != name.rstrip("/"):  # "", ".", "a//b"
        return "not a normal path (empty, '.', or doubled '/')"
    if member.size > MAX_MEMBER_BYTES:
        return f"{member.size:,} bytes, more than the {MAX_MEMBER_BYTES:,} a bundle member may have"
    if not 0 <= member.mtime <= MAX_MTIME:  # also NaN; a time past time_t ended extraction in OverflowError
        return f"modification time {shown(member.mtime, 40)} is outside 0..{MAX_MTIME:,}"
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        return "would land outside the destination"
    try:
        tarfile.data_filter(member, str(dest))  # the standard library's rules (PEP 706) as well as ours
    except tarfile.FilterError as exc:
        return str(exc)
    return None


def _strict_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """The extraction filter: our rules, then tarfile's "data" filter (which also drops owners and odd modes)."""
    problem = _member_problem(member, Path(dest))
    if problem:
        raise UserError(f"{shown(member.name)}: refused: {problem}")
    return tarfile.data_filter(member, dest)


def _read_headers(tar: tarfile.TarFile, dest: Path, label: str) -> tuple[list[tarfile.TarInfo], bytes | None]:
    """Every member's header, each checked as soon as it is read (a 2 GB member is refused before its data is
    skipped), and the bytes of the top folder's SHA256SUMS."""
    members: list[tarfile.TarInfo] = []
    total, sums = 0, None
    for m in tar:  # reads one header at a time; the data is skipped only when the next header is read
        if len(members) == MAX_MEMBERS:
            raise UserError(f"{label}: more than {MAX_MEMBERS:,} members; refused")
        problem = _member_problem(m, dest)
        if problem:
            raise UserError(f"{label}: {shown(m.name)}: refused: {problem}")
        total += m.size
        if total > MAX_TOTAL_BYTES:
            raise UserError(f"{label}: {shown(m.name)}: refused: the members add up to more than "
                            f"{MAX_TOTAL_BYTES:,} bytes")
        parts = PurePosixPath(m.name).parts
        if m.isfile() and len(parts) == 2 and parts[1] == checksums.FILE_NAME:
            if m.size > MAX_SUMS_BYTES:
                raise UserError(f"{label}: {shown(m.name)}: refused: {m.size:,} bytes is too big for a checksum "
                                "list")
            src = tar.extractfile(m)
            sums = src.read() if src is not None else b""
        members.append(m)
    return members, sums


def _check_layout(members: list[tarfile.TarInfo], sums: bytes | None, label: str) -> str:
    """One top folder, no name twice, no file used as a folder, every file listed in SHA256SUMS and every listed
    file present; returns the top folder's name."""
    tops = {PurePosixPath(m.name).parts[0] for m in members}
    if len(tops) != 1:
        raise UserError(f"{label}: expected one top-level bundle folder, found {len(tops)}")
    names = [m.name.rstrip("/") for m in members]
    if len(set(names)) != len(names):
        raise UserError(f"{label}: the archive lists a member twice")
    files = {m.name for m in members if m.isfile()}
    for m in members:
        for parent in PurePosixPath(m.name).parents:
            if str(parent) in files:
                raise UserError(f"{label}: {shown(m.name)}: refused: {shown(parent)} is a file in this archive, "
                                "not a folder")
    top = tops.pop()
    if sums is None:
        raise UserError(f"{label}: {shown(top)}/{checksums.FILE_NAME} missing")
    listed = checksums.parse(sums.decode(errors="replace"), label)
    for name in sorted(files):
        rel = name[len(top) + 1:]
        if rel != checksums.FILE_NAME and rel not in listed:
            raise UserError(f"{label}: {shown(name)}: refused: not listed in {checksums.FILE_NAME}")
    for rel in listed:
        if f"{top}/{rel}" not in files:
            raise UserError(f"{label}: {shown(rel)}: listed in {checksums.FILE_NAME} but missing")
    return top


def safe_extract(archive: Path, dest: Path, label: str | None = None) -> Path:
    """Extract a bundle archive into the empty folder `dest`; returns the bundle's top folder inside it.

    The raw headers are walked first (tar_headers: extended headers bounded before tarfile parses them), then
    every header is checked (our rules and tarfile's "data" filter, size limits, the SHA256SUMS listing), so
    a bad member is refused before anything is written; then members are streamed out through the same filter.
    Raises UserError naming the first bad member, or the archive if it is truncated or not a .tar.gz.
    """
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    label = label or f"verify: {archive.name}"
    try:
        tar_headers.check(archive, label, MAX_MEMBERS, MAX_MEMBER_BYTES, MAX_TOTAL_BYTES)  # before tarfile parses
        with tarfile.open(archive, mode="r:gz") as tar:
            members, sums = _read_headers(tar, dest, label)
            top = _check_layout(members, sums, label)
            try:
                tar.extractall(dest, members=members, filter=_strict_filter)
            except UserError as exc:
                raise UserError(f"{label}: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{label}: truncated or not a .tar.gz ({exc})") from None
    except OSError as exc:
        raise UserError(f"{label}: cannot extract into {dest} ({exc.strerror or exc})") from None
    return dest / top

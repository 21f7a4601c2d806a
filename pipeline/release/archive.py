"""Reproducible .tar.gz writing and refuse-first extraction of release bundles.

Writing: entries sorted, mtime 0 (or SOURCE_DATE_EPOCH), uid/gid 0 with empty user and group names, mode 0644 for
files and 0755 for folders, gzip header with mtime 0 and no file name, so the same tree gives the same bytes.
Extraction: every member is checked before anything is written (no absolute paths, no `..`, no links or device
files, nothing that would land outside the destination), then regular files are copied out one by one.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from pipeline.errors import UserError

FILE_MODE, DIR_MODE = 0o644, 0o755


def source_date_epoch() -> int:
    """The fixed mtime for bundle entries: SOURCE_DATE_EPOCH when set (reproducible-builds.org), else 0."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not value.isdigit():
        raise UserError(f"SOURCE_DATE_EPOCH={value!r}: expected a whole number of seconds")
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


def _member_problem(member: tarfile.TarInfo, dest: Path) -> str | None:
    name = member.name
    if name.startswith("/") or PurePosixPath(name).is_absolute() or (name[1:2] == ":" and name[:1].isalpha()):
        return "absolute path"
    if ".." in PurePosixPath(name).parts or "\\" in name:
        return "path leaves the bundle ('..' or a backslash)"
    if member.issym() or member.islnk():
        return f"{'symbolic' if member.issym() else 'hard'} link to {member.linkname!r}"
    if not (member.isfile() or member.isdir()):
        return "not a plain file or folder (device, fifo or other special file)"
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        return "would land outside the destination"
    return None


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a bundle archive into the empty folder `dest`; returns the bundle's top folder inside it.

    Raises UserError naming the first bad member before writing anything, or the archive if it is truncated or
    not a .tar.gz.
    """
    dest = dest.resolve()
    label = f"verify: {archive.name}"
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                problem = _member_problem(m, dest)
                if problem:
                    raise UserError(f"{label}: {m.name}: refused: {problem}")
            tops = {PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts}
            if len(tops) != 1:
                raise UserError(f"{label}: expected one top-level bundle folder, found {len(tops)}")
            names = [m.name.rstrip("/") for m in members]
            if len(set(names)) != len(names):
                raise UserError(f"{label}: the archive lists a member twice")
            for m in members:
                target = dest / m.name
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None  # regular files always have data
                target.write_bytes(src.read())
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{label}: truncated or not a .tar.gz ({exc})") from None
    return dest / tops.pop()

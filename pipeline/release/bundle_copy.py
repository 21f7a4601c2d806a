"""Taking a release bundle into another place (the Android app's assets, an APK's staging folder): copied without
ever following a link, then checked, then moved into place.

The copy is what gets checked, so a bundle changed while it is being copied cannot slip through. The check is
`verify.check_contents`: files and folders only, SHA256SUMS, the metadata schema, each model's sha256, the sample
pictures and recorded outputs. It does not run the models (the app does that; `pipeline verify` checks them on the
host), so bundles whose model files are stand-ins, as in the app's tests, can be copied.

Example::

    copy_verified(Path("build/release/fashion-0.1.0-host"), Path("android_demo/app/src/main/assets/bundle"),
                  "copy-bundle")
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from pipeline.core import work_folders
from pipeline.core.errors import UserError, shown
from pipeline.release import archive
from pipeline.release.verify import check_contents


def _check_size(size: int, total: int, rel: str, label: str) -> None:
    """Refuse a file of `size` bytes that is too big on its own, or that would take the copy (`total` bytes so far)
    past the bundle's limit: checked from the file's size before a byte is copied."""
    if size > archive.MAX_MEMBER_BYTES:
        raise UserError(f"{label}: {shown(rel)}: refused: {size:,} bytes, more than the {archive.MAX_MEMBER_BYTES:,} "
                        "a bundle file may have")
    if total + size > archive.MAX_TOTAL_BYTES:
        raise UserError(f"{label}: {shown(rel)}: refused: the files add up to more than "
                        f"{archive.MAX_TOTAL_BYTES:,} bytes")


def _copy_file(src: Path, dest: Path, rel: str, label: str, total: int) -> int:
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)  # a link swapped in after the listing is refused here too
    except OSError as exc:
        raise UserError(f"{label}: {shown(rel)}: refused: cannot be opened without following links "
                        f"({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{label}: {shown(rel)}: refused: not a plain file")
        _check_size(info.st_size, total, rel, label)  # a file swapped or grown after the listing
        limit = min(archive.MAX_MEMBER_BYTES, archive.MAX_TOTAL_BYTES - total)
        with dest.open("xb") as out:
            while chunk := f.read(min(1 << 20, limit + 1 - out.tell())):  # never more than one byte past it
                out.write(chunk)
            copied = out.tell()
    _check_size(copied, total, rel, label)
    return copied


def copy_plain_tree(src: Path, dest: Path, label: str, shown_dest: Path | None = None) -> None:
    """Copy the files and folders under `src` into the new folder `dest`; a link, device, fifo or socket anywhere
    is refused with one line naming it, each file's size is checked against the bundle size limits before it is
    copied, and a failed write (a full disk) is one line naming the file and `shown_dest` (default `dest`)."""
    dest.mkdir()
    pending, files, total = [Path()], 0, 0
    while pending:
        rel_dir = pending.pop()
        with os.scandir(src / rel_dir) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = rel_dir / entry.name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    raise UserError(f"{label}: {shown(rel.as_posix())}: refused: a symbolic link (to "
                                    f"{shown(repr(os.readlink(entry.path)))}); a bundle holds plain files only")
                if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
                    raise UserError(f"{label}: {shown(rel.as_posix())}: refused: not a plain file or folder")
                files += 1
                if files > archive.MAX_MEMBERS:
                    raise UserError(f"{label}: more than {archive.MAX_MEMBERS:,} files and folders; refused")
                if stat.S_ISREG(info.st_mode):
                    _check_size(info.st_size, total, rel.as_posix(), label)
                try:
                    if stat.S_ISDIR(info.st_mode):
                        (dest / rel).mkdir()
                        pending.append(rel)
                    else:
                        total += _copy_file(src / rel, dest / rel, rel.as_posix(), label, total)
                except OSError as exc:
                    raise UserError(f"{label}: {shown(rel.as_posix())}: cannot be copied into "
                                    f"{shown(shown_dest or dest, 400)}: {exc.strerror or exc}") from None


def copy_verified(bundle: Path, dest: Path, label: str) -> Path:
    """Replace `dest` with a checked copy of the release bundle `bundle` (a folder, or a .tar.gz that is extracted
    with the same care as `pipeline verify` does); raises UserError with one line and leaves `dest` alone on a
    problem."""
    if not bundle.exists():
        raise UserError(f"{label}: {shown(bundle, 400)}: no such file or folder; pass a release bundle directory or "
                        ".tar.gz")
    try:
        return _copy_into(bundle, dest, label)
    except OSError as exc:  # the destination's folder cannot be made or written: nothing was left there
        where = f" ({shown(exc.filename, 400)})" if exc.filename else ""
        raise UserError(f"{label}: cannot copy {shown(bundle, 400)} into {shown(dest, 400)}: "
                        f"{exc.strerror or exc}{where}") from None


def _copy_into(bundle: Path, dest: Path, label: str) -> Path:
    made = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]  # removed again if the copy fails
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = work_folders.make(f".{dest.name}.", dest.parent)
    copied = False
    try:
        source = archive.safe_extract(bundle, work / "extracted", label) if bundle.is_file() else bundle
        staged = work / "staged"
        copy_plain_tree(source, staged, label, shown_dest=dest)
        if not (staged / "metadata.json").is_file():
            raise UserError(f"{label}: {shown(bundle, 400)} has no metadata.json; pass a release bundle directory")
        check_contents(staged, label)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()  # never write through a link someone put in place of the destination
        elif dest.exists():
            os.replace(dest, work / "previous")  # removed with `work` below
        os.replace(staged, dest)
        copied = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for folder in made if not copied else ():  # deepest first; a refused bundle leaves no new empty folder
            try:
                folder.rmdir()
            except OSError:
                break
    return dest

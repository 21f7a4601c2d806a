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
from pipeline.core.errors import UserError
from pipeline.release import archive
from pipeline.release.verify import check_contents


def _copy_file(src: Path, dest: Path, rel: str, label: str) -> int:
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)  # a link swapped in after the listing is refused here too
    except OSError as exc:
        raise UserError(f"{label}: {rel}: refused: cannot be opened without following links ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f, dest.open("xb") as out:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise UserError(f"{label}: {rel}: refused: not a plain file")
        shutil.copyfileobj(f, out, 1 << 20)
        return out.tell()


def copy_plain_tree(src: Path, dest: Path, label: str) -> None:
    """Copy the files and folders under `src` into the new folder `dest`; a link, device, fifo or socket anywhere
    is refused with one line naming it, and the copy stops within the bundle size limits."""
    dest.mkdir()
    pending, files, total = [Path()], 0, 0
    while pending:
        rel_dir = pending.pop()
        with os.scandir(src / rel_dir) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = rel_dir / entry.name
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISLNK(mode):
                    raise UserError(f"{label}: {rel.as_posix()}: refused: a symbolic link (to "
                                    f"{os.readlink(entry.path)!r}); a bundle holds plain files only")
                if stat.S_ISDIR(mode):
                    (dest / rel).mkdir()
                    pending.append(rel)
                    continue
                if not stat.S_ISREG(mode):
                    raise UserError(f"{label}: {rel.as_posix()}: refused: not a plain file or folder")
                files += 1
                total += _copy_file(src / rel, dest / rel, rel.as_posix(), label)
                if files > archive.MAX_MEMBERS or total > archive.MAX_TOTAL_BYTES:
                    raise UserError(f"{label}: more than {archive.MAX_MEMBERS:,} files or "
                                    f"{archive.MAX_TOTAL_BYTES:,} bytes; refused")


def copy_verified(bundle: Path, dest: Path, label: str) -> Path:
    """Replace `dest` with a checked copy of the release bundle `bundle` (a folder, or a .tar.gz that is extracted
    with the same care as `pipeline verify` does); raises UserError with one line and leaves `dest` alone on a
    problem."""
    if not bundle.exists():
        raise UserError(f"{label}: {bundle}: no such file or folder; pass a release bundle directory or .tar.gz")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = work_folders.make(f".{dest.name}.", dest.parent)
    try:
        source = archive.safe_extract(bundle, work / "extracted", label) if bundle.is_file() else bundle
        staged = work / "staged"
        copy_plain_tree(source, staged, label)
        if not (staged / "metadata.json").is_file():
            raise UserError(f"{label}: {bundle} has no metadata.json; pass a release bundle directory")
        check_contents(staged, label)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()  # never write through a link someone put in place of the destination
        elif dest.exists():
            os.replace(dest, work / "previous")  # removed with `work` below
        os.replace(staged, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest

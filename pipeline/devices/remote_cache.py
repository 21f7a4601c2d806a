"""A content-addressed cache on the device: each file or folder is pushed once, under its sha256.

Layout on the device: `WORKDIR/cache/<sha16>-<name>` for files and `WORKDIR/cache/<sha16>-<name>.d/` for
folders (pushed as one .tar.gz, unpacked there, renamed into place once complete). A rerun pushes nothing.
"""

from __future__ import annotations

import hashlib
import shlex
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import ToolError
from pipeline.devices.base import Device


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tar_gz_of(folder: Path) -> Path:
    """The folder as one .tar.gz beside it (one push instead of one per file), made once."""
    archive = folder.with_name(folder.name + ".tar.gz")
    if not archive.exists():
        tmp = archive.with_name(archive.name + ".partial")
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(folder, arcname=".")
        tmp.rename(archive)
    return archive


@dataclass
class Upload:
    """One thing to have on the device: a file, or a folder shipped as `archive` and unpacked."""

    local: Path
    name: str
    unpack: bool = False
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha = sha256_of(self.local)[:16]

    @property
    def entry(self) -> str:
        return f"{self.sha}-{self.name}" + (".d" if self.unpack else "")


class RemoteCache:
    """The cache folder of one device; `ensure` pushes what is missing and returns device paths."""

    def __init__(self, device: Device):
        self.device = device
        self.root = f"{device.workdir}/cache"

    def missing(self, uploads: list[Upload]) -> list[Upload]:
        out = self.device.check(
            f"mkdir -p {shlex.quote(self.root)} && ls -1 {shlex.quote(self.root)}",
            timeout=60,
            step="list cache",
        )
        present = set(out.split())
        return [u for u in uploads if u.entry not in present]

    def ensure(self, uploads: list[Upload], *, free_bytes: int | None) -> tuple[dict[str, str], list[str]]:
        """Push the missing uploads (free space checked first): (name -> device path, names pushed now)."""
        missing = self.missing(uploads)
        # A folder needs its archive and its unpacked content at once; gzip shrinks these about 3.5 times.
        needed = sum(u.local.stat().st_size * (5 if u.unpack else 1) for u in missing)
        if free_bytes is not None and needed > free_bytes:
            raise ToolError(
                f"device {self.device.name}: push: needs {needed / 1e6:.0f} MB in {self.device.workdir}, "
                f"{free_bytes / 1e6:.0f} MB free"
            )
        for upload in missing:
            self._push(upload)
        return {u.name: f"{self.root}/{u.entry}" for u in uploads}, [u.name for u in missing]

    def _push(self, upload: Upload) -> None:
        final = f"{self.root}/{upload.entry}"
        if not upload.unpack:
            self.device.push(upload.local, final + ".partial")
            self.device.check(f"mv {final}.partial {final}", timeout=60, step=f"push {upload.name}")
            return
        archive = final + ".tar.gz"
        self.device.push(upload.local, archive)
        self.device.check(
            f"rm -rf {final}.partial && mkdir -p {final}.partial && tar xzf {archive} -C {final}.partial && "
            f"rm -f {archive} && mv {final}.partial {final}",
            timeout=600,
            step=f"unpack {upload.name}",
        )

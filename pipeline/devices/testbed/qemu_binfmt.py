"""Make this machine run arm64 Linux programs: trixie's static qemu-aarch64, registered with binfmt_misc.

Trixie's QEMU 10 is used because bookworm's 7.2 crashes inside the LiteRT interpreter. The F flag makes the
kernel open the interpreter at registration, so it also works inside a chroot that does not contain it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.core.errors import ToolError
from pipeline.core.proc import run
from pipeline.devices.cache_dir import devices_cache
from pipeline.devices.testbed.foreign_suite_debs import download_debs

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
ENTRY = "phone-pipeline-aarch64"
SUITE = "trixie"


def qemu_root() -> Path:
    return devices_cache() / f"qemu-user-{SUITE}"


def ensure_qemu_aarch64(say) -> Path:
    """Unpack trixie's qemu-user once (cached); return the interpreter path that binfmt_misc should use."""
    root = qemu_root()
    interpreter = root / "usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    if not interpreter.exists():
        say("emulated-arm64: downloading trixie's qemu-user")
        scratch = root.with_name(root.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        for deb in download_debs(["qemu-user"], suite=SUITE, arch="amd64", workdir=scratch / "apt"):
            run(["dpkg-deb", "-x", str(deb), str(scratch)], what=f"devices: unpack {deb.name}")
        shutil.rmtree(scratch / "apt")
        shutil.rmtree(root, ignore_errors=True)
        scratch.rename(root)
    return interpreter


def register_binfmt(interpreter: Path) -> None:
    """Register `interpreter` for arm64 ELF files (flags O, P, F), replacing an older registration of ours."""
    if not (BINFMT_DIR / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], what="devices: mount binfmt_misc")
    entry = BINFMT_DIR / ENTRY
    if entry.exists():
        if f"interpreter {interpreter}" in entry.read_text():
            return
        entry.write_text("-1")
    conf = (qemu_root() / "usr/share/qemu/binfmt.d/qemu-aarch64.conf").read_text().strip()
    # Debian's line is `:name:M::magic:mask:interpreter:flags`: keep its magic and mask, use our name, path.
    _, _, kind, offset, magic, mask, _, flags = conf.split(":")
    line = f":{ENTRY}:{kind}:{offset}:{magic}:{mask}:{interpreter}:{flags if 'F' in flags else flags + 'F'}"
    try:
        (BINFMT_DIR / "register").write_text(line)
    except OSError as exc:
        raise ToolError(
            f"devices: register qemu-aarch64 with binfmt_misc: {exc.strerror or exc} (needs root)"
        ) from None


def binfmt_registered() -> bool:
    entry = BINFMT_DIR / ENTRY
    return entry.exists() and entry.read_text().startswith("enabled")

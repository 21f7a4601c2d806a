"""The kernel file systems a test device's chroot needs: /proc, /sys (XNNPACK reads CPU facts there), /dev.

/dev is a small tmpfs holding bind mounts of a few host device nodes and its own devpts, not a bind mount of the
host's /dev: an `rm -rf` of the cache while a device is up then cannot delete the host's device nodes.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.proc import run

DEVICE_NODES = ("null", "zero", "full", "random", "urandom", "tty")


def mounted_points(root: Path) -> list[Path]:
    """Mount points at or under `root`, deepest first (the order to unmount them)."""
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == prefix or target.startswith(prefix + "/"):
            points.append(Path(target))
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def mount_kernel_filesystems(root: Path) -> None:
    """Mount /proc, /sys and a minimal /dev inside `root`; already mounted ones are left alone."""
    root = root.resolve()
    present = set(mounted_points(root))
    for name, args in (("proc", ["-t", "proc", "proc"]), ("sys", ["-t", "sysfs", "sysfs"])):
        if root / name not in present:
            _mount(args, root / name)
    if root / "dev" not in present:
        _mount_dev(root / "dev")


def unmount_all(root: Path) -> None:
    """Unmount everything under `root`, deepest first."""
    for point in mounted_points(root):
        run(["umount", "-l", str(point)], what=f"devices: umount {point}", check=False)


def _mount_dev(dev: Path) -> None:
    _mount(["-t", "tmpfs", "-o", "mode=755,size=16m", "devtmp"], dev)
    for node in DEVICE_NODES:
        (dev / node).touch()
        _mount(["--bind", f"/dev/{node}"], dev / node)
    _mount(["-t", "devpts", "-o", "newinstance,ptmxmode=0666", "devpts"], dev / "pts")
    (dev / "ptmx").symlink_to("pts/ptmx")
    (dev / "shm").mkdir(mode=0o1777)


def _mount(args: list[str], target: Path) -> None:
    if not target.exists():
        target.mkdir()
    run(["mount", *args, str(target)], what=f"devices: mount {target}")

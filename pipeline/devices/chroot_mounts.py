"""The kernel file systems a test device's chroot needs: /proc, /sys (XNNPACK reads CPU facts there), /dev."""

from __future__ import annotations

from pathlib import Path

from pipeline.proc import run

MOUNTS = (("proc", ["-t", "proc", "proc"]), ("sys", ["-t", "sysfs", "sysfs"]), ("dev", ["--rbind", "/dev"]))


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
    """Mount /proc, /sys and /dev inside `root`; already mounted ones are left alone."""
    present = set(mounted_points(root))
    for name, args in MOUNTS:
        target = root.resolve() / name
        if target not in present:
            target.mkdir(exist_ok=True)
            run(["mount", *args, str(target)], what=f"devices: mount /{name} in {root.name}")
            if name == "dev":
                # A private propagation keeps unmounting the chroot's /dev from unmounting the host's.
                run(["mount", "--make-rslave", str(target)], what=f"devices: mount /{name} in {root.name}")


def unmount_all(root: Path) -> None:
    """Unmount everything under `root`, deepest first."""
    for point in mounted_points(root):
        run(["umount", "-l", str(point)], what=f"devices: umount {point}", check=False)

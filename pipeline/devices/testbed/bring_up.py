"""Test devices on a machine with no phone: real adbd in Debian chroots, reached by the real adb client.

    python -m pipeline.devices.testbed up [NAME]      # build once (cached), start, adb connect; idempotent
    python -m pipeline.devices.testbed down [NAME]    # stop our adbd, adb disconnect, unmount
    python -m pipeline.devices.testbed status

"adb-loopback" is an amd64 trixie chroot (adbd needs glibc >= 2.38, bookworm has 2.36); "emulated-arm64" is an
arm64 trixie chroot with python3, run by qemu-user through binfmt_misc. Ports lie outside 5555-5585, where the
adb server would list a device as an emulator by itself.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import ToolError, UserError
from pipeline.core.proc import start_daemon
from pipeline.devices.adb import AdbDevice
from pipeline.devices.cache_dir import devices_cache
from pipeline.devices.testbed.chroot_mounts import mount_kernel_filesystems, unmount_all
from pipeline.devices.testbed.qemu_binfmt import ensure_qemu_aarch64, register_binfmt
from pipeline.devices.testbed.rootfs import RootfsRecipe, build_rootfs, is_built, rootfs_path

ADBD = "/usr/lib/android-sdk/platform-tools/adbd"
DEVICE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/root", "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class TestDevice:
    """One test device: its root file system recipe and the loopback port its adbd listens on."""

    name: str
    port: int
    recipe: RootfsRecipe
    emulated: bool

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def root(self) -> Path:
        return rootfs_path(self.name, self.recipe)

    @property
    def pidfile(self) -> Path:
        return devices_cache() / "state" / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return devices_cache() / "state" / f"{self.name}.log"


TEST_DEVICES = {
    d.name: d
    for d in (
        TestDevice("adb-loopback", 6520, RootfsRecipe("trixie", "amd64", ("adbd",)), emulated=False),
        TestDevice("emulated-arm64", 6522, RootfsRecipe("trixie", "arm64", ("adbd", "python3")), emulated=True),
    )
}


def say(msg: str) -> None:
    print(f"[devices] {msg}", flush=True)


def device_named(name: str) -> TestDevice:
    if name not in TEST_DEVICES:
        raise UserError(f"devices: no test device named {name!r}; known: {', '.join(TEST_DEVICES)}")
    return TEST_DEVICES[name]


def up(name: str) -> AdbDevice:
    """Build (once), start and connect one test device; does only what is missing."""
    dev = device_named(name)
    started = time.monotonic()
    root = build_rootfs(dev.name, dev.recipe, say)
    if dev.emulated:
        register_binfmt(ensure_qemu_aarch64(say))
    mount_kernel_filesystems(root)
    if adbd_pid(dev) is None:
        _start_adbd(dev, root)
    adb = AdbDevice(dev.serial, workdir=dev.recipe.workdir + "/phone-pipeline", name=dev.name)
    adb.reconnect(timeout=60)
    say(f"{dev.name}: up as {dev.serial} ({time.monotonic() - started:.1f} s)")
    return adb


def down(name: str) -> None:
    """Stop our adbd for the device (by its recorded pid), disconnect it and unmount its chroot."""
    dev = device_named(name)
    AdbDevice(dev.serial, name=dev.name).disconnect()
    _stop_adbd(dev)
    dev.pidfile.unlink(missing_ok=True)
    unmount_all(dev.root)
    say(f"{dev.name}: down")


def stop_adbd(name: str) -> None:
    """Stop the device's adbd without touching adb: adb then lists the serial as `offline`."""
    _stop_adbd(device_named(name))


def start_adbd(name: str) -> None:
    """Start the device's adbd again after `stop_adbd`; adb reconnects the serial on its own retry timer."""
    dev = device_named(name)
    _start_adbd(dev, dev.root)


def restart_adbd(name: str) -> None:
    """Stop and start the device's adbd without touching adb."""
    stop_adbd(name)
    start_adbd(name)


def status(name: str) -> str:
    dev = device_named(name)
    built = "built" if is_built(dev.root) else "not built"
    pid = adbd_pid(dev)
    running = f"adbd pid {pid}" if pid else "adbd stopped"
    state = AdbDevice(dev.serial).state()
    return f"{dev.name}: {built}, {running}, adb {dev.serial}: {state}"


def adbd_pid(dev: TestDevice) -> int | None:
    """The pid of the adbd we started for `dev`, when it still runs."""
    try:
        pid = int(dev.pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"adbd" in cmdline else None


def _stop_adbd(dev: TestDevice) -> None:
    pid = adbd_pid(dev)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 10):
            os.kill(pid, signal.SIGKILL)


def _start_adbd(dev: TestDevice, root: Path) -> None:
    if _port_open(dev.port):
        raise ToolError(f"devices: {dev.name}: port {dev.port} is taken by another program; stop it first")
    say(f"{dev.name}: starting adbd on port {dev.port}" + (" (emulated arm64)" if dev.emulated else ""))
    proc = start_daemon(
        ["chroot", str(root), ADBD],
        what=f"devices: {dev.name}: adbd",
        log=dev.log,
        env={**DEVICE_ENV, "ADBD_PORT": str(dev.port)},
    )
    dev.pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + 60
    while not _port_open(dev.port):
        if proc.poll() is not None:
            tail = dev.log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ToolError(f"devices: {dev.name}: adbd exited with code {proc.returncode}: {tail[0]}")
        if time.monotonic() > deadline:
            raise ToolError(f"devices: {dev.name}: adbd did not listen on port {dev.port} within 60 s")
        time.sleep(0.2)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return False


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "down", "status"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    names = argv[1:] or list(TEST_DEVICES)
    try:
        for name in names:
            if argv[0] == "up":
                up(name)
            elif argv[0] == "down":
                down(name)
            else:
                print(status(name))
    except UserError as exc:
        print(f"[devices] error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

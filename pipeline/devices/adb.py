"""A device reached through the adb client: a USB phone serial, `emulator-5554`, or a `host:port` adbd.

Every adb call goes through pipeline.core.proc.run. adb's own failures (device missing, offline, unauthorized) are
told apart from the remote command's exit code, which `adb shell` passes through (shell protocol v2).
"""

from __future__ import annotations

import os
import re
import shlex
import time
import uuid
from pathlib import Path

from pipeline.core.errors import ToolError
from pipeline.core.proc import run
from pipeline.devices.base import Command, CommandResult, Device, as_shell

DEFAULT_WORKDIR = "/data/local/tmp/phone-pipeline"
# adb's own complaints about reaching the device, as opposed to the remote command's output.
_NOT_REACHABLE = re.compile(
    r"(device '[^']*' not found|device offline|device unauthorized|no devices/emulators found|"
    r"device still (connecting|authorizing)|cannot connect to daemon|closed$|protocol fault)",
    re.MULTILINE,
)
# Worth one reconnect for a host:port serial: adbd restarted (offline), or the adb server restarted and forgot
# the connection (not found).
_RECONNECTABLE = re.compile(
    r"device offline|device still connecting|closed$|protocol fault|device '[^']*' not found", re.MULTILINE
)


def adb_binary() -> str:
    """The adb client: `$ADB` when set, else `adb` on PATH (Debian's `adb` package)."""
    return os.environ.get("ADB", "adb")


def adb(args: list[str], *, what: str, timeout: float, check: bool = True):
    """Run the adb client with `args`; the one place this module calls out."""
    return run([adb_binary(), *args], what=what, timeout=timeout, check=check)


class AdbDevice(Device):
    """A device behind one adb serial; a `host:port` serial is reconnected once when adb says offline."""

    def __init__(self, serial: str, workdir: str = DEFAULT_WORKDIR, name: str | None = None):
        self.serial = serial
        self.workdir = workdir
        self.name = name or serial

    @property
    def is_network(self) -> bool:
        return re.fullmatch(r"[\w.\-]+:\d+", self.serial) is not None

    def push(self, local: Path, remote: str, *, timeout: float = 300) -> None:
        self._adb(["push", str(local), remote], step=f"push {Path(local).name}", timeout=timeout)

    def pull(self, remote: str, local: Path, *, timeout: float = 300) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        self._adb(["pull", remote, str(local)], step=f"pull {remote}", timeout=timeout)

    def run(self, cmd: Command, *, timeout: float, step: str = "run") -> CommandResult:
        # The wrapper records the shell's pid, then execs the command in its place, so that on a timeout the
        # hung program itself (and its direct children) is killed on the device, not only the local client.
        pidfile = f"{self.workdir}/.pid-{uuid.uuid4().hex[:12]}"
        inner = f"sh -c {shlex.quote(cmd)}" if isinstance(cmd, str) else as_shell(cmd)
        wrapped = f"mkdir -p {shlex.quote(self.workdir)} && echo $$ > {pidfile} && exec {inner}"
        try:
            proc = self._adb(["shell", wrapped], step=step, timeout=timeout, check=False)
        except ToolError:
            self._kill_remote(pidfile)
            raise
        self._adb(["shell", f"rm -f {pidfile}"], step=f"{step}: cleanup", timeout=30, check=False)
        return CommandResult(
            proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )

    def state(self) -> str:
        """adb's view of the serial: `device`, `offline`, `unauthorized`, or `absent`."""
        proc = adb(["devices"], what="adb devices", timeout=30)
        for line in proc.stdout.decode(errors="replace").splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == self.serial:
                return parts[1]
        return "absent"

    def connect(self, *, timeout: float = 30) -> None:
        """`adb connect` a host:port serial and wait until adb lists it as `device`."""
        if not self.is_network:
            raise ToolError(f"device {self.name}: connect: only host:port serials can be connected by adb")
        deadline = time.monotonic() + timeout
        while True:
            out = adb(["connect", self.serial], what=f"device {self.name}: adb connect", timeout=30, check=False)
            text = (out.stdout + out.stderr).decode(errors="replace").strip()
            if self.state() == "device":
                return
            if time.monotonic() > deadline:
                raise ToolError(f"device {self.name}: adb connect: {text or 'no answer'}")
            time.sleep(0.5)

    def disconnect(self) -> None:
        if self.is_network:
            adb(
                ["disconnect", self.serial],
                what=f"device {self.name}: adb disconnect",
                timeout=30,
                check=False,
            )

    def reconnect(self, *, timeout: float = 30) -> None:
        """After adbd restarts, adb keeps a host:port serial `offline` until a disconnect and a connect."""
        self.disconnect()
        self.connect(timeout=timeout)

    def _adb(self, args: list[str], *, step: str, timeout: float, check: bool = True):
        for attempt in (1, 2):
            proc = adb(["-s", self.serial, *args], what=f"device {self.name}: {step}", timeout=timeout, check=False)
            err = proc.stderr.decode(errors="replace").strip()
            unreachable = proc.returncode != 0 and _NOT_REACHABLE.search(err)
            if not unreachable:
                break
            if attempt == 1 and self.is_network and _RECONNECTABLE.search(err):
                try:
                    self.reconnect(timeout=5)
                except ToolError:
                    pass
                continue
            raise ToolError(f"device {self.name}: {step}: not reachable through adb ({err.splitlines()[-1]})")
        if check and proc.returncode != 0:
            last = (err or proc.stdout.decode(errors="replace").strip() or "no output").splitlines()[-1]
            raise ToolError(f"device {self.name}: {step}: exit code {proc.returncode}: {last}")
        return proc

    def _kill_remote(self, pidfile: str) -> None:
        script = (
            f'p=$(cat {pidfile} 2>/dev/null); [ -n "$p" ] || exit 0; '
            "for c in $(cat /proc/$p/task/$p/children 2>/dev/null); do kill -9 $c; done; "
            f"kill -9 $p; rm -f {pidfile}"
        )
        try:
            self._adb(["shell", script], step="kill timed-out command", timeout=30, check=False)
        except ToolError:
            pass

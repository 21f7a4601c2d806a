"""This machine as a device: files are copied locally and commands run as subprocesses."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.core.errors import ToolError
from pipeline.core.proc import run
from pipeline.devices.base import Command, CommandResult, Device


class HostDevice(Device):
    """Runs the device-side runners on this machine; `workdir` is a local folder."""

    def __init__(self, workdir: str | Path, name: str = "host"):
        self.name = name
        self.workdir = str(workdir)

    def push(self, local: Path, remote: str, *, timeout: float = 300) -> None:
        self._copy(Path(local), Path(remote), "push")

    def pull(self, remote: str, local: Path, *, timeout: float = 300) -> None:
        self._copy(Path(remote), Path(local), "pull")

    def run(self, cmd: Command, *, timeout: float, step: str = "run") -> CommandResult:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        proc = run(argv, what=f"device {self.name}: {step}", timeout=timeout, check=False)
        return CommandResult(
            proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )

    def _copy(self, src: Path, dst: Path, step: str) -> None:
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)  # keeps the mode: pushed runners must stay executable
        except OSError as exc:
            raise ToolError(f"device {self.name}: {step} {src} -> {dst}: {exc.strerror or exc}") from None

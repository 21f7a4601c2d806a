"""The device interface: move files, run programs, and say what the device can do.

A device is anything that runs the pipeline's runners: this machine, a phone over adb, an emulated phone.
Capabilities are read from the device itself (`probe`), never assumed: a phone may lack `taskset`, a test
device lacks `getprop` and `am`, thermal zones may be unreadable.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from pipeline.core.errors import ToolError

Command = Sequence[str] | str
# Tools whose presence changes what the pipeline does on a device (pinning cores, Android properties, ...).
OPTIONAL_TOOLS = ("getprop", "am", "taskset", "python3", "timeout", "sha256sum")


class CommandResult(NamedTuple):
    """What a command on the device returned; unpacks as `code, out, err`."""

    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Capabilities:
    """What `probe` read from the device."""

    abi: str
    cpu_count: int
    core_max_freq_khz: dict[int, int] = field(default_factory=dict)
    thermal_millicelsius: dict[str, int] = field(default_factory=dict)
    free_bytes: int | None = None
    tools: dict[str, bool] = field(default_factory=dict)

    def has(self, tool: str) -> bool:
        return self.tools.get(tool, False)

    def to_dict(self) -> dict:
        return asdict(self)


class Device(ABC):
    """A place that runs programs; `name` appears in every error, `workdir` is where files go on it."""

    name: str
    workdir: str

    @abstractmethod
    def push(self, local: Path, remote: str, *, timeout: float = 300) -> None:
        """Copy a local file to `remote` on the device, creating its folder."""

    @abstractmethod
    def pull(self, remote: str, local: Path, *, timeout: float = 300) -> None:
        """Copy `remote` from the device to a local file."""

    @abstractmethod
    def run(self, cmd: Command, *, timeout: float, step: str = "run") -> CommandResult:
        """Run argv (quoted for the device's shell) or a shell string; a timeout kills it (ToolError)."""

    def probe(self, *, timeout: float = 60) -> Capabilities:
        """Read ABI, CPUs, core frequencies, thermal zones, free space and optional tools from the device."""
        result = self.run(probe_script(self.workdir), timeout=timeout, step="probe")
        if result.exit_code != 0:
            raise ToolError(f"device {self.name}: probe: exit code {result.exit_code}: {result.stderr.strip()}")
        return parse_probe(result.stdout)

    def check(self, cmd: Command, *, timeout: float, step: str) -> str:
        """Run a command that must succeed; returns its stdout, raises one ToolError line otherwise."""
        code, out, err = self.run(cmd, timeout=timeout, step=step)
        if code != 0:
            last = (err.strip() or out.strip() or "no output").splitlines()[-1]
            raise ToolError(f"device {self.name}: {step}: exit code {code}: {last}")
        return out


def as_shell(cmd: Command) -> str:
    """A command line for the device's shell: argv is quoted, a string is passed as it is."""
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def probe_script(workdir: str) -> str:
    """A POSIX sh script (dash, Android's mksh) printing one `key value` line per fact."""
    tools = " ".join(OPTIONAL_TOOLS)
    wd = shlex.quote(workdir)
    return "; ".join(
        [
            'echo "abi $(uname -m)"',
            'echo "online $(cat /sys/devices/system/cpu/online 2>/dev/null)"',
            'echo "processors $(grep -c ^processor /proc/cpuinfo 2>/dev/null)"',
            "for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do "
            '[ -r "$f" ] && echo "freq $f $(cat "$f" 2>/dev/null)"; done',
            "for z in /sys/class/thermal/thermal_zone*; do "
            '[ -r "$z/temp" ] && echo "thermal $(cat "$z/type" 2>/dev/null || basename "$z") '
            '$(cat "$z/temp" 2>/dev/null)";'
            " done",
            f'for t in {tools}; do command -v "$t" >/dev/null 2>&1 && echo "tool $t"; done',
            f'mkdir -p {wd} && echo "df $( (df -kP {wd} 2>/dev/null || df -k {wd}) | tail -n 1)"',
            "true",
        ]
    )


def parse_probe(text: str) -> Capabilities:
    """Turn the probe script's output into Capabilities; missing facts stay empty rather than guessed."""
    caps = Capabilities(abi="unknown", cpu_count=0, tools={t: False for t in OPTIONAL_TOOLS})
    processors = 0
    for line in text.splitlines():
        key, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if key == "abi" and rest:
            caps.abi = rest
        elif key == "online" and rest:
            caps.cpu_count = _count_cpu_list(rest)
        elif key == "processors" and rest.isdigit():
            processors = int(rest)
        elif key == "freq":
            path, _, value = rest.rpartition(" ")
            core = path.split("/cpu/cpu")[-1].split("/")[0]
            if value.isdigit() and core.isdigit():
                caps.core_max_freq_khz[int(core)] = int(value)
        elif key == "thermal":
            zone, _, value = rest.rpartition(" ")
            if value.lstrip("-").isdigit():
                caps.thermal_millicelsius[zone] = int(value)
        elif key == "tool":
            caps.tools[rest] = True
        elif key == "df":
            fields = rest.split()
            if len(fields) >= 4 and fields[3].isdigit():
                caps.free_bytes = int(fields[3]) * 1024
    if caps.cpu_count == 0:
        caps.cpu_count = processors
    return caps


def _count_cpu_list(spec: str) -> int:
    """Count CPUs in a kernel CPU list such as `0-3,6`."""
    count = 0
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            count += int(hi or lo) - int(lo) + 1
    return count

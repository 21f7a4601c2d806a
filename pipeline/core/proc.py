"""The one place that starts subprocesses: timeouts, captured output and one-line errors.

Children started by `run` die with the process that started them (Linux: PR_SET_PDEATHSIG), so a `kill -9` of a
pipeline run does not leave an onnx2tf conversion or a runtime check running on its own. Daemons started by
`start_daemon` are meant to outlive their caller and are left alone.

Children are started as commands (`python -m pipeline.<module>`), never by multiprocessing's spawn or forkserver:
those re-run the caller's `__main__` in the child, and a caller's script without a main guard would start a second
run. What children write on stderr (native libraries' chatter) goes to the `pipeline.proc` log at DEBUG, which the
run's log file keeps and the console does not show; a failing child's last line is in its one-line error.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pipeline.core.errors import ToolError

_PR_SET_PDEATHSIG = 1
log = logging.getLogger("pipeline.proc")


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec_fn that asks the kernel to SIGKILL the child when `parent` dies; None off Linux.

    The kernel ties the signal to the thread that forked, so `run` must be called from a thread that outlives the
    child (the main thread in this project). The getppid check covers a parent that died before prctl ran.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def tie_to_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (a process forked by hand, not started by `run`)."""
    preexec = _die_with_parent(os.getppid())
    if preexec is not None:
        preexec()


def exit_description(returncode: int) -> str:
    """'exit code 3' or, for a child killed by a signal, 'killed by SIGABRT' (a runtime that aborted)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


# The folder holding the `pipeline` package this process runs. Children started with `python -m pipeline.<x>`
# (often from another working directory) get it first on PYTHONPATH, so they run this same code, not whatever
# checkout the venv's editable install points at.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def venv_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: the venv's bin first on PATH (onnx2tf shells out to `onnxsim`), this
    checkout first on PYTHONPATH."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if extra:
        env.update(extra)
    return env


# Where native libraries and children put their temporary files when they follow the environment: onnxruntime's
# `.ses` file, onnx2tf's and TensorFlow's scratch files, torch inductor's cache (else $TMPDIR/torchinductor_USER).
_TEMPORARY_VARIABLES = ("TMPDIR", "TORCHINDUCTOR_CACHE_DIR")


@contextmanager
def temporary_files_in(folder: Path) -> Iterator[Path]:
    """Within the block, this process's native libraries and every child put their temporary files under `folder`
    (a run's files stay in its build dir). Python's own `tempfile` of this process keeps the folder it had."""
    import tempfile

    tempfile.gettempdir()  # pinned before TMPDIR changes: this process's Python temp files stay where they were
    folder.mkdir(parents=True, exist_ok=True)
    values = {"TMPDIR": str(folder), "TORCHINDUCTOR_CACHE_DIR": str(folder / "torchinductor")}
    before = {name: os.environ.get(name) for name in _TEMPORARY_VARIABLES}
    os.environ.update(values)
    try:
        yield folder
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def last_line(output: bytes | None) -> str:
    """The last non-empty line of a child's output (its own words for why it failed), or 'no output'."""
    tail = (output or b"")[-4000:].decode(errors="replace").strip()
    return tail.splitlines()[-1].strip() if tail else "no output"


def run(
    cmd: Sequence[str],
    *,
    what: str,
    timeout: float | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: bytes | None = None,
) -> subprocess.CompletedProcess:
    """Run `cmd`, capturing output. `what` names the step in errors ("to_tflite: onnx2tf", "adb push").

    On a non-zero exit (with check) or a timeout, raises ToolError with one line naming `what`; the captured
    output's tail goes into the exception's `detail` for logs.
    """
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, env=dict(env) if env is not None else venv_env(), capture_output=True,
            timeout=timeout, check=False, input=input, preexec_fn=_die_with_parent(os.getpid()),
        )
    except subprocess.TimeoutExpired as exc:
        err = ToolError(f"{what}: timed out after {timeout:g} s ({' '.join(map(str, cmd[:3]))} ...)")
        err.detail = (exc.stderr or b"")[-4000:].decode(errors="replace")
        raise err from None
    except FileNotFoundError:
        raise ToolError(f"{what}: command not found: {cmd[0]} (run `make setup`)") from None
    _log_output(what, proc.stderr)
    if check and proc.returncode != 0:
        output = proc.stderr or proc.stdout
        err = ToolError(f"{what}: {exit_description(proc.returncode)}: {last_line(output)}")
        err.detail = (output or b"")[-4000:].decode(errors="replace").strip()
        raise err
    return proc


def _log_output(what: str, output: bytes | None) -> None:
    """A child's stderr into the log at DEBUG, one record per line (the run's log file, not the console)."""
    for line in (output or b"").decode(errors="replace").splitlines():
        if line.strip():
            log.debug("%s: %s", what, line.rstrip())


def python_module(module: str, *args: str) -> list[str]:
    """Command line that runs `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def start(cmd: Sequence[str], *, what: str, log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start a child that works beside the caller (a search worker), output to `log`; it dies with the caller."""
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("ab") as out:
            return subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=dict(env) if env is not None else venv_env(),
                                    preexec_fn=_die_with_parent(os.getpid()))
    except FileNotFoundError:
        raise ToolError(f"{what}: command not found: {cmd[0]} (run `make setup`)") from None


def start_daemon(
    cmd: Sequence[str], *, what: str, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen:
    """Start a long-running process (a device's adbd) in its own session, output appended to `log`.

    Its own session keeps it alive after the caller exits and lets the caller stop it, and only it, by pid.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("ab") as out:
            return subprocess.Popen(
                list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else venv_env(), start_new_session=True,
            )
    except FileNotFoundError:
        raise ToolError(f"{what}: command not found: {cmd[0]} (run `make setup`)") from None


class Server:
    """A child that answers each request line on its stdin with one reply line on its stdout (the benchmark's
    measurement server). It dies with the caller; its stderr goes to the log at DEBUG, line by line, as it comes.

        server = Server(python_module("pipeline.measure.fork_server"), what="benchmark: measurement server")
        reply = server.ask('{"artifact": ...}', what="benchmark: pte-fp32", timeout=1800)
        server.close()
    """

    def __init__(self, cmd: Sequence[str], *, what: str, env: Mapping[str, str] | None = None):
        self.what = what
        self.tail: collections.deque[str] = collections.deque(maxlen=20)  # its last stderr lines, for errors
        try:
            self.child = subprocess.Popen(list(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=dict(env) if env is not None else venv_env(),
                                          preexec_fn=_die_with_parent(os.getpid()))
        except FileNotFoundError:
            raise ToolError(f"{what}: command not found: {cmd[0]} (run `make setup`)") from None
        self.pump = threading.Thread(target=self._log_stderr, args=(self.child.stderr,), daemon=True,
                                     name=f"stderr of {what}")
        self.pump.start()

    def _log_stderr(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if line.strip():
                self.tail.append(line)
                log.debug("%s: %s", self.what, line)

    def alive(self) -> bool:
        return self.child.poll() is None

    def ask(self, request: str, *, what: str, timeout: float) -> str:
        """Send one request line and return the reply line; a timeout (the server is then killed) or a server that
        died is a ToolError naming `what`."""
        try:
            self.child.stdin.write(request.encode() + b"\n")
            self.child.stdin.flush()
            ready, _, _ = select.select([self.child.stdout], [], [], timeout)
            reply = self.child.stdout.readline() if ready else None
        except BrokenPipeError:
            reply = b""
        if reply is None:
            self.close(kill=True)
            raise ToolError(f"{what}: timed out after {timeout:g} s")
        if not reply:
            self.close()
            self.pump.join(timeout=5)
            last = self.tail[-1] if self.tail else "no output"
            raise ToolError(f"{what}: {self.what} ended ({exit_description(self.child.returncode)}): {last}")
        return reply.decode(errors="replace")

    def close(self, kill: bool = False) -> None:
        """End the server: its stdin closed (it exits when it reads the end), killed at once with `kill` or if it
        has not exited after 10 s."""
        if kill:
            self.child.kill()
        if self.child.stdin and not self.child.stdin.closed:
            try:
                self.child.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        self.pump.join(timeout=5)

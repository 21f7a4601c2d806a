"""The one place that starts subprocesses: timeouts, captured output and one-line errors.

Children started by `run` die with the process that started them (Linux: PR_SET_PDEATHSIG), so a `kill -9` of a
pipeline run does not leave an onnx2tf conversion or a runtime check running on its own. Daemons started by
`start_daemon` are meant to outlive their caller and are left alone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from pipeline.core.errors import ToolError

_PR_SET_PDEATHSIG = 1


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
    if check and proc.returncode != 0:
        output = proc.stderr or proc.stdout
        err = ToolError(f"{what}: {exit_description(proc.returncode)}: {last_line(output)}")
        err.detail = (output or b"")[-4000:].decode(errors="replace").strip()
        raise err
    return proc


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

"""The one logger setup. The pipeline logs to the `pipeline` logger; importing any module of it configures nothing.

Two pieces, used by the doors and the runner, never on import:
- `setup` (the CLI): the pipeline's own lines on the console, short and timestamped; third-party logs and Python
  warnings kept off it (with -v they show too).
- `run_file` (the runner, for the length of a run): everything else goes to the run folder's `run.log`: every log
  record (the pipeline's at DEBUG, with the stderr of its child processes; third parties' at their level) and every
  byte written on this process's stderr, where native libraries (ExecuTorch's cpuinfo lines) and torch's own log
  handlers (the ONNX exporter's "torchvision is not installed") write. The console keeps the pipeline's lines and the
  progress bars.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

RUN_LOG = "run.log"
CONSOLE_FORMAT = "%(asctime)s %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_console: logging.StreamHandler | None = None  # the handler `setup` put on the console
_installed: list[tuple[logging.Logger, logging.Handler]] = []  # what `setup` added, removed by the next call
_run_console: TextIO | None = None  # the terminal while a run points this process's stderr at its log file


def setup(verbose: bool = False) -> None:
    """Console logging for the CLI: the pipeline's lines at INFO (DEBUG with `verbose`); third-party records and
    warnings only with `verbose` (a run keeps them in its log file either way). Calling it again replaces it."""
    global _console
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
    root, pipeline = logging.getLogger(), logging.getLogger("pipeline")
    for logger, handler in _installed:
        logger.removeHandler(handler)
    _console = logging.StreamHandler(sys.stderr)
    _console.setFormatter(logging.Formatter(CONSOLE_FORMAT, datefmt="%H:%M:%S"))
    _console.setLevel(logging.DEBUG if verbose else logging.INFO)
    # With -v the console sits on the root logger and shows third-party warnings too; else the root gets a handler
    # that drops them, so that Python's last-resort handler does not print them on stderr.
    _installed[:] = [(root, _console)] if verbose else [(root, logging.NullHandler()), (pipeline, _console)]
    for logger, handler in _installed:
        logger.addHandler(handler)
    pipeline.setLevel(logging.DEBUG)  # the run log keeps DEBUG; the console handler filters
    logging.captureWarnings(True)  # Python warnings become log records of `py.warnings`: the run log, not stderr


def console() -> TextIO:
    """Where progress bars go: the terminal, also while a run points stderr at its log file."""
    return _run_console or sys.stderr


@contextmanager
def run_file(path: Path, enabled: bool = True) -> Iterator[Path]:
    """For the body, log every record and this process's stderr (fd 2, inherited by children) to `path`, emptied
    first; `enabled=False` does nothing (torchrun ranks other than 0 write no run folder).

        with run_file(run_dir / RUN_LOG):
            ...  # a native library's chatter and a third party's warnings land in run.log, not on the terminal
    """
    if not enabled:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")  # appends, like fd 2 below: no overwrites
    handler.setFormatter(logging.Formatter(FILE_FORMAT, datefmt="%H:%M:%S"))
    root, pipeline = logging.getLogger(), logging.getLogger("pipeline")
    level = pipeline.level
    if level == logging.NOTSET:  # no door set it: keep the pipeline's DEBUG lines in the file anyway
        pipeline.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        with _stderr_to(path):
            yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        pipeline.setLevel(level)


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Point fd 2 at `path` (appending) for the body; the console handler and `console()` keep the terminal."""
    global _run_console
    _flush(sys.stderr)
    saved = os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    previous, before = _run_console, _swap_stream(_console, terminal) if _console is not None else None
    _run_console = terminal
    os.dup2(target, 2)
    os.close(target)
    try:
        yield
    finally:
        _flush(sys.stderr)
        os.dup2(saved, 2)
        os.close(saved)
        if _console is not None and before is not None:
            _swap_stream(_console, before)
        _run_console = previous
        terminal.close()


def _swap_stream(handler: logging.StreamHandler, stream: TextIO) -> TextIO | None:
    """`handler.setStream(stream)`, also when the handler's stream was closed meanwhile (a stream captured by an
    earlier call in this process, such as a test's); returns the stream it had."""
    try:
        return handler.setStream(stream)
    except ValueError:  # flushing the closed stream
        old, handler.stream = handler.stream, stream
        return old


def _flush(stream: TextIO | None) -> None:
    if stream is not None:  # None under pythonw
        stream.flush()

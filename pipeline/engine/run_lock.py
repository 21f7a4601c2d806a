"""One run at a time per run folder: `fcntl.flock` on `<run folder>/.lock` while a run writes it.

A second run of the same recipe and target waits for the first and says, in one line, which process holds the
folder; then it finds the first run's results in the cache. The kernel drops the lock when its holder dies, even
by `kill -9`, so a stale lock file never blocks anyone. A holder that is this process or one of its ancestors would
never finish while we wait (a run started from inside that run: a helper process that re-ran the caller's script), so
that case is refused at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.core.errors import UserError, shown

log = logging.getLogger("pipeline")
LOCK_FILE = ".lock"


@contextmanager
def hold(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Hold `run_dir`'s lock for the body (waiting for another holder first); `enabled=False` does nothing
    (torchrun ranks other than 0 never write the run folder)."""
    if not enabled:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as f:  # "a+": never truncate what the holder wrote
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            _refuse_own_tree(run_dir, holder)
            log.warning("%s is being written by another run (pid %s); waiting for it to finish", run_dir, holder)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)


def _ancestors() -> list[int]:
    """This process's pid and its ancestors' pids, nearest first (Linux: from /proc; elsewhere the parent only)."""
    pids, pid = [os.getpid()], os.getppid()
    while pid > 1 and pid not in pids:
        pids.append(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])  # the field after the command's ")" is the state
        except (OSError, ValueError, IndexError):
            break
    return pids


def _refuse_own_tree(run_dir: Path, holder: str) -> None:
    """A UserError when `holder` (the pid the lock file names) is this process or an ancestor: waiting would hang."""
    if not holder.isdigit() or int(holder) not in _ancestors():
        return
    who = "this process" if int(holder) == os.getpid() else "a process that started this one"
    raise UserError(f"{shown(run_dir)} is being written by {who} (pid {holder}): a run cannot wait for itself; "
                    "was this run started from inside that run (a script without an "
                    "`if __name__ == \"__main__\":` guard re-run by a helper process)?")

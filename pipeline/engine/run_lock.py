"""One run at a time per run folder: `fcntl.flock` on `<run folder>/.lock` while a run writes it.

A second run of the same recipe and target waits for the first and says, in one line, which process holds the
folder; then it finds the first run's results in the cache. The kernel drops the lock when its holder dies, even
by `kill -9`, so a stale lock file never blocks anyone.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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

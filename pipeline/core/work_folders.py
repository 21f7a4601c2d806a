"""Temporary folders that carry their owner's pid, so that the next start removes those of processes that died.

A `release`, `verify` or `copy-bundle` killed with SIGKILL cannot remove its temporary folder: `.NAME.<pid>.<random>`
beside the bundle, `pipeline-verify.<pid>.<random>` and `pipeline-outputs.<pid>.<random>` in the temp folder. `make`
first removes the folders of the same prefix whose process is gone, as the stage cache does with its
`.tmp-<key>-<pid>` folders; a folder of a running process, or of another user's, is left alone.

Example::

    with temporary("pipeline-verify.") as tmp:  # /tmp/pipeline-verify.4242.k3j2h1ab, removed on exit
        ...
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead(parent: Path, prefix: str) -> list[Path]:
    """Remove the folders `<prefix><pid>.<random>` in `parent` whose process is gone; returns them."""
    owned = re.compile(re.escape(prefix) + r"(\d+)\.[A-Za-z0-9_]+")  # mkdtemp's random part has no dots
    removed = []
    for path in sorted(parent.glob(glob.escape(prefix) + "*")):
        m = owned.fullmatch(path.name)
        if m and path.is_dir() and not path.is_symlink() and int(m[1]) != os.getpid() and not pid_alive(int(m[1])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def make(prefix: str, parent: Path | None = None) -> Path:
    """A new folder `<prefix><pid>.<random>` in `parent` (default: the temp folder), after removing the folders of
    the same prefix left there by processes that died."""
    parent = parent or Path(tempfile.gettempdir())
    remove_dead(parent, prefix)
    return Path(tempfile.mkdtemp(dir=parent, prefix=f"{prefix}{os.getpid()}."))


@contextlib.contextmanager
def temporary(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """`make`, removed again when the block ends."""
    path = make(prefix, parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)

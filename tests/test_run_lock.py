"""A run folder has one writer at a time: a second run waits, naming the process that holds it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pipeline.engine import run_lock

ROOT = Path(__file__).resolve().parent.parent

HOLDER = """
import sys, time
from pathlib import Path
from pipeline.engine import run_lock
run_dir, release = Path(sys.argv[1]), Path(sys.argv[2])
with run_lock.hold(run_dir):
    (run_dir / "held").write_text("")
    while not release.exists():
        time.sleep(0.05)
"""

WAITER = """
import sys
from pathlib import Path
from pipeline.core import log
from pipeline.engine import run_lock
log.setup()
with run_lock.hold(Path(sys.argv[1])):
    print("got it")
"""


def _wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_second_run_waits_and_names_the_pid_that_holds_the_folder(tmp_path: Path) -> None:
    run_dir, release = tmp_path / "runs" / "tiny__host", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), str(release)], cwd=ROOT)
    try:
        _wait_for(run_dir / "held")
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        assert waiter.poll() is None, "the second run did not wait"
        release.write_text("")
        out, err = waiter.communicate(timeout=30)
    finally:
        holder.kill()
    assert out == "got it\n"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        f"{run_dir} is being written by another run (pid {holder.pid}); waiting for it to finish")


def test_the_lock_of_a_killed_run_does_not_block_the_next_one(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), str(tmp_path / "never")], cwd=ROOT)
    _wait_for(run_dir / "held")
    holder.kill()  # SIGKILL: no cleanup ran, the lock file still names it
    holder.wait()
    start = time.monotonic()
    with run_lock.hold(run_dir):
        assert time.monotonic() - start < 5
    assert (run_dir / run_lock.LOCK_FILE).read_text() == ""


def test_disabled_does_not_touch_the_folder(tmp_path: Path) -> None:
    with run_lock.hold(tmp_path / "run", enabled=False):
        pass
    assert not (tmp_path / "run").exists()

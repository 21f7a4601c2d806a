"""A run folder has one writer at a time: a second run waits, naming the process that holds it; a run inside the
run that holds the folder is refused at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
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

# Holds the folder and starts a child that runs on the same folder, as a helper process that re-runs the caller's
# unguarded script would.
NESTED = """
import subprocess, sys
from pathlib import Path
from pipeline.engine import run_lock
child = "from pathlib import Path; import sys; from pipeline.engine import run_lock\\n" \\
        "with run_lock.hold(Path(sys.argv[1])): print('got it')"
with run_lock.hold(Path(sys.argv[1])):
    proc = subprocess.run([sys.executable, "-c", child, sys.argv[1]], capture_output=True, text=True, timeout=60)
print(proc.returncode)
print(proc.stderr.strip().splitlines()[-1])
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


def test_a_run_started_inside_the_run_that_holds_the_folder_is_refused_at_once(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "tiny__host"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", NESTED, str(run_dir)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    code, last = proc.stdout.strip().splitlines()
    assert code == "1" and time.monotonic() - start < 60
    assert last.startswith("pipeline.core.errors.UserError: ") and "a process that started this one" in last
    assert "a run cannot wait for itself" in last


def test_a_second_hold_in_the_process_that_holds_the_folder_is_refused(tmp_path: Path) -> None:
    with run_lock.hold(tmp_path / "run"):
        with pytest.raises(UserError, match="by this process .* a run cannot wait for itself"):
            with run_lock.hold(tmp_path / "run"):
                pass

"""pipeline/core/proc.py: children die with the run that started them; a child killed by a signal is named as such;
a server child answers line by line, and its timeout or death is one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.core.errors import ToolError
from pipeline.core.proc import Server, run

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has died; only its exit status is waiting to be collected


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_child_dies_when_its_run_is_killed_with_sigkill(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = ("import sys; from pipeline.core.proc import run; "
              f"run(['sh', '-c', 'echo $$ > {pid_file}.part && mv {pid_file}.part {pid_file} && exec sleep 300'], "
              "what='test child', timeout=600)")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        assert _wait_for(pid_file.exists, 60), "the child never started"
        child = int(pid_file.read_text())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait_for(lambda: not _alive(child), 10), f"child {child} outlived its killed parent"
    finally:
        parent.kill()
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_child_killed_by_a_signal_is_reported_by_the_signal_name() -> None:
    with pytest.raises(ToolError) as err:
        run([sys.executable, "-c", "import os, sys; sys.stderr.write('about to abort\\n'); os.abort()"],
            what="test: runtime")
    assert str(err.value) == "test: runtime: killed by SIGABRT: about to abort"


def test_a_python_child_runs_this_checkouts_pipeline_from_any_folder(tmp_path: Path) -> None:
    from pipeline.core.proc import python_module

    proc = run([sys.executable, "-c", "import pipeline; print(pipeline.__file__)"], what="test: import", cwd=tmp_path)
    assert Path(proc.stdout.decode().strip()).resolve() == ROOT / "pipeline" / "__init__.py"
    assert python_module("pipeline.x")[:2] == [sys.executable, "-m"]


# Echoes each request; "sleep" hangs, "die" writes a last word on stderr and exits.
ECHO_SERVER = """
import sys, time
for line in sys.stdin:
    if line.strip() == "sleep":
        time.sleep(60)
    if line.strip() == "die":
        sys.exit("the server's last word")
    print("echo " + line.strip(), flush=True)
"""


def test_a_server_child_answers_each_request_and_its_death_is_one_line() -> None:
    server = Server([sys.executable, "-c", ECHO_SERVER], what="the echo server")
    try:
        assert server.ask("a", what="ask a", timeout=30) == "echo a\n"
        assert server.ask("b", what="ask b", timeout=30) == "echo b\n"
        with pytest.raises(ToolError) as info:
            server.ask("die", what="ask die", timeout=30)
        assert str(info.value) == "ask die: the echo server ended (exit code 1): the server's last word"
    finally:
        server.close()


def test_a_server_child_that_does_not_answer_in_time_is_killed() -> None:
    server = Server([sys.executable, "-c", ECHO_SERVER], what="the echo server")
    start = time.monotonic()
    with pytest.raises(ToolError, match=r"^ask sleep: timed out after 1 s$"):
        server.ask("sleep", what="ask sleep", timeout=1)
    assert time.monotonic() - start < 10 and not server.alive()

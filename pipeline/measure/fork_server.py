"""Measurements in processes forked from a server that has imported torch and ExecuTorch and done nothing else:
a fresh process per artifact per round, without paying the 1.4 s `import torch` every time (6 of the 11 s a round
of the default recipe's 14 artifacts took).

The server is a command, `python -m pipeline.measure.fork_server`, started through `core.proc.Server`; it forks each
measurement by hand. multiprocessing's forkserver did this before, but it prepares every child by re-running the
caller's `__main__` (CPython's spawn.prepare: `init_main_from_path` runs the script again as `__mp_main__`), so a
user's script without a main guard started a second run inside the benchmark, which then waited forever for the
first run's lock.

Protocol: one JSON line per request on stdin (bench_worker.measure's arguments), one JSON line per reply on stdout:
{"status": "ok", "result": {...}} or {"status": "error", "message": "one line"}.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import sys

from pipeline.core.errors import ToolError, one_line
from pipeline.core.proc import Server, exit_description, python_module, tie_to_parent

# Imported once by the server; every forked measurement starts with them loaded and nothing run.
PRELOAD = [
    "pipeline.measure.bench_worker", "pipeline.runtimes.executorch_session", "pipeline.runtimes.torch_eager",
]
PROCESS = "forked from a server with torch and ExecuTorch imported"
_server: Server | None = None


def measure_forked(args: dict, what: str, timeout: float) -> dict:
    """`bench_worker.measure(args)` in a process forked from the server (started on first use); a crash, an error
    or a timeout is a ToolError naming `what`."""
    global _server
    if _server is None or not _server.alive():
        _server = Server(python_module("pipeline.measure.fork_server"), what="the measurement server")
        atexit.register(stop)
    reply = json.loads(_server.ask(json.dumps(args), what=what, timeout=timeout))
    if reply["status"] != "ok":
        raise ToolError(f"{what}: {reply['message']}")
    return {**reply["result"], "process": PROCESS}


def stop() -> None:
    """End the server, if one is running (the benchmark stops it after its rounds)."""
    global _server
    if _server is not None:
        _server.close()
        _server = None


def _measure_in_fork(args: dict) -> dict:
    """Fork, measure in the child, and return the child's reply (or how it died)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the measurement: nothing run yet but the preloaded imports
        os.close(read_end)
        tie_to_parent()
        try:
            from pipeline.measure.bench_worker import measure

            reply = {"status": "ok", "result": measure(args)}
        except BaseException as exc:  # noqa: BLE001 - the caller reports it in one line
            reply = {"status": "error", "message": one_line(exc, 300)}
        with os.fdopen(write_end, "w") as out:
            out.write(json.dumps(reply))
        sys.stderr.flush()
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        text = answer.read()
    _, status = os.waitpid(pid, 0)
    if text:
        return json.loads(text)
    return {"status": "error", "message": exit_description(os.waitstatus_to_exitcode(status))}


def serve() -> None:
    """The server's loop: preload, then one forked measurement per request line until stdin ends."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a library's print or a native log line goes to stderr, never into the replies
    for name in PRELOAD:
        importlib.import_module(name)
    for line in sys.stdin:
        replies.write(json.dumps(_measure_in_fork(json.loads(line))) + "\n")


if __name__ == "__main__":
    serve()

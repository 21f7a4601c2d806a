"""Helper processes never import the caller's `__main__`: a script without an `if __name__ == "__main__":` guard
that calls the runner finishes, and its body runs once."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, write_recipe, write_target

# A user's script as written in a hurry: no main guard. Each time its body runs it appends its pid to a file.
UNGUARDED = """
import os
from pathlib import Path
from pipeline.engine import runner
from pipeline.engine.recipes import load_recipe
from pipeline.recipe.targets import load_target

with open({marker!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")
out = runner.run(load_recipe({recipe!r}), load_target({target!r}), runner.RunOptions(build_dir=Path({build!r})))
print("finished", out)
"""


def test_a_script_without_a_main_guard_runs_through_the_benchmark_once(tmp_path: Path) -> None:
    # the smallest run that reaches the benchmark: 1 epoch on 1,000 images, no pruning or int8; the torch-fp32
    # model is still timed in a process forked from the measurement server, the helper that re-ran the script
    recipe = write_recipe(tmp_path, **{"train.epochs": "1", "train.max_train_samples": "1000",
                                       "data.eval_samples": "100", "prune.enabled": "false"})
    target = write_target(tmp_path, runs=5, build='["onnx-fp32"]')
    marker, script = tmp_path / "ran", tmp_path / "my_script.py"
    script.write_text(UNGUARDED.format(marker=str(marker), recipe=str(recipe), target=str(target),
                                       build=str(tmp_path / "build")))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("finished ")
    assert len(marker.read_text().splitlines()) == 1, "a helper process ran the script's body again"
    report = (tmp_path / "build" / "runs" / "tiny__test-host" / "report.json").read_text()
    assert '"torch-fp32"' in report


def test_no_module_of_the_pipeline_starts_processes_through_multiprocessing() -> None:
    # spawn and forkserver prepare each child by running the caller's __main__ again; children are commands
    # started by core/proc.py instead
    users = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            if any("multiprocessing" in n.split(".") or n.endswith("ProcessPoolExecutor") for n in names):
                users.append(str(path.relative_to(ROOT)))
    assert users == []

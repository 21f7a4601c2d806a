"""Third-party noise (Python logs and warnings, native libraries' stderr, child processes' stderr) goes to the run
folder's run.log, not the console; the console keeps the pipeline's own lines; importing configures no logging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, cli, write_recipe, write_target

TORCHVISION = "torchvision is not installed. Skipping torchvision::"
CPUINFO = "[cpuinfo_utils.cpp:"

IMPORT_EVERYTHING = """
import importlib, logging, pkgutil, warnings
import pipeline
root, showwarning = logging.getLogger(), warnings.showwarning
handlers, level = list(root.handlers), root.level
for module in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
ours = logging.getLogger("pipeline")
print(root.handlers == handlers, root.level == level, ours.handlers == [], ours.level == logging.NOTSET,
      warnings.showwarning is showwarning)
"""

# The CLI's console setup, then a run's log file around what third parties do during a run.
NOISY_RUN = """
import logging, os, sys, warnings
from pathlib import Path
from pipeline.core import log, proc
from pipeline.core.errors import ToolError
log.setup()
with log.run_file(Path(sys.argv[1])):
    logging.getLogger("pipeline").info("[to_onnx] done in 1.0 s")
    logging.getLogger("torch.onnx._internal.exporter._registration").warning("%s", "torchvision is not installed. "
                                                                             "Skipping torchvision::nms")
    warnings.warn("a third party's deprecation", FutureWarning)
    os.write(2, b"[cpuinfo_utils.cpp:87] Failed to open midr file (native, this process)\\n")
    chatter = "import sys; print('[cpuinfo_utils.cpp:109] Failed to open midr file (a child)', file=sys.stderr)"
    proc.run([sys.executable, "-c", chatter], what="a child")
    try:
        proc.run([sys.executable, "-c", "import sys; sys.exit('the reason it failed')"], what="a failing child")
    except ToolError as exc:
        logging.getLogger("pipeline").info("caught: %s", exc)
"""


def test_importing_the_pipeline_configures_no_logging() -> None:
    proc = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True"] * 5


def test_third_party_noise_goes_to_the_run_log_and_the_pipelines_lines_to_the_console(tmp_path: Path) -> None:
    run_log = tmp_path / "runs" / "tiny__host" / "run.log"
    proc = subprocess.run([sys.executable, "-c", NOISY_RUN, str(run_log)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console, kept = proc.stderr.splitlines(), run_log.read_text()
    assert [line.split(" ", 1)[1] for line in console] == [
        "[to_onnx] done in 1.0 s",
        "caught: a failing child: exit code 1: the reason it failed"]
    for noise in ("torchvision is not installed", "a third party's deprecation", "(native, this process)",
                  "(a child)", "[to_onnx] done in 1.0 s", "the reason it failed"):
        assert noise in kept


def test_a_cli_run_keeps_the_onnx_exporters_and_executorchs_noise_in_its_log(tmp_path: Path) -> None:
    # the ONNX exporter's torchvision warnings (to_onnx, in this process) and ExecuTorch's cpuinfo lines (evaluate in
    # this process, benchmark in forked processes) on the smallest run that has both
    recipe = write_recipe(tmp_path, **{"train.epochs": "1", "train.max_train_samples": "1000",
                                       "data.eval_samples": "100", "prune.enabled": "false"})
    target = write_target(tmp_path, runs=5, build='["onnx-fp32", "pte-fp32"]')
    proc = cli("run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(tmp_path / "build"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = (tmp_path / "build" / "runs" / "tiny__test-host" / "run.log").read_text()
    assert "[to_onnx] done" in proc.stderr and "[to_onnx] done" in kept
    for noise in (TORCHVISION, CPUINFO):
        assert noise not in proc.stderr and noise in kept

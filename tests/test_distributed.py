"""Training under torchrun: two CPU processes with DistributedDataParallel (gloo); only rank 0 writes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, write_recipe, write_target


@pytest.mark.slow  # about 3 min: train, the pruning fine-tune and QAT again, in two processes
def test_two_process_training_gives_a_valid_model_close_to_single_process(e2e, tmp_path):
    # train, the pruning fine-tune and QAT all run under DistributedDataParallel here
    recipe = write_recipe(tmp_path, "ddp", **{"quantize.methods": '["qat"]'})
    target = write_target(tmp_path, runs=5, build='["onnx-fp32", "pte-int8"]')
    build = tmp_path / "build"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "pipeline",
           "run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(build)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads((build / "runs" / "ddp__test-host" / "report.json").read_text())
    rows = {r["name"]: r for r in rep["artifacts"]}
    single = {r["name"]: r for r in e2e["report"]["artifacts"]}["torch-fp32"]["accuracy"]
    assert abs(rows["torch-fp32"]["accuracy"] - single) < 0.06, (rows["torch-fp32"]["accuracy"], single)
    assert rows["onnx-fp32"]["top1_agreement"] == 1.0  # the model rank 0 wrote is complete and exports
    assert rows["onnx-pruned-fp32"]["top1_agreement"] == 1.0
    assert rows["pte-pruned-int8-qat"]["top1_agreement"] >= 0.97  # the QAT program reproduces its reference
    manifest = json.loads((build / "runs" / "ddp__test-host" / "manifest.json").read_text())
    assert manifest["stages"][0]["name"] == "train" and not manifest["stages"][0]["cached"]
    # one cache entry per stage: rank 1 trained alongside but wrote nothing into the shared cache
    assert len([p for p in (build / "cache" / "train").iterdir() if not p.name.startswith(".")]) == 1
    assert not list((build / "cache" / "train").glob(".tmp-*"))

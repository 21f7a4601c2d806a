"""The decompose stage through every artifact: factorised ONNX, TFLite and .pte agree with their PyTorch model,
and the report shows the ranks, the MACs saved and whether it paid in measured latency.

About 3.5 minutes, so it runs in `make test-all`; `make test` keeps the decomposed trials of tests/test_search.py,
whose `.pte` files are checked for parity with their PyTorch model."""

import json

import pytest
from conftest import cli, write_recipe, write_target


@pytest.mark.slow
def test_decomposed_model_keeps_parity_through_onnx_tflite_and_pte(workspace):
    recipe = write_recipe(workspace, "lowrank", **{"decompose.enabled": "true", "decompose.min_saving": "0.05",
                                                   "decompose.energy": "0.85"})
    folder = workspace / "lowrank-target"
    folder.mkdir(exist_ok=True)
    target = write_target(folder, runs=10, build='["onnx-fp32", "tflite-fp32", "pte-fp32"]')
    proc = cli("run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(workspace / "build"),
               "--no-explain")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads((workspace / "build" / "runs" / "lowrank__test-host" / "report.json").read_text())
    rows = {r["name"]: r for r in rep["artifacts"]}
    for name in ("onnx-lowrank-fp32", "tflite-lowrank-fp32", "pte-lowrank-fp32"):
        row = rows[name]
        assert row["lowrank"] and row["gate"] == "pass", row["violations"]
        assert row["top1_agreement"] >= 0.999 and row["max_abs_diff"] < 1e-3
        assert row["macs"] < rows[name.replace("-lowrank", "")]["macs"]
    dec = rep["decomposition"]
    assert dec["after"]["macs"] < dec["before"]["macs"] and dec["layers"]
    assert all(layer["macs_after"] < layer["macs_before"] for layer in dec["layers"])
    md = (workspace / "build" / "runs" / "lowrank__test-host" / "report.md").read_text()
    assert "Low-rank decomposition per layer" in md and "does it pay?" in md

"""Tolerances from the recipe: a violation fails the run naming artifact, metric, value and limit."""

from __future__ import annotations

import json

from tests.conftest import cli, write_recipe


def test_violated_tolerance_fails_with_one_line(e2e, tmp_path, test_target):
    # Same model as the shared run (so training is cached); only the fp16 tolerance is impossible.
    recipe = write_recipe(tmp_path, "tiny", **{"tolerances.fp16.max_abs_diff": "1e-9"})
    proc = cli("run", "--recipe", str(recipe), "--target", str(test_target), "--build-dir", str(e2e["build"]))
    assert proc.returncode == 3, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "tflite-fp16: max_abs_diff" in line and "> 1e-09 (tolerances.fp16.max_abs_diff)" in line
    assert "Traceback" not in proc.stderr
    manifest = json.loads((e2e["build"] / "runs" / "tiny__test-host" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]][-1] == "evaluate"  # stopped at the gate
    rep = json.loads((e2e["build"] / "runs" / "tiny__test-host" / "report.json").read_text())
    assert rep["gates"]["enforced"] and any("tflite-fp16: max_abs_diff" in v for v in rep["gates"]["violations"])
    row = {r["name"]: r for r in rep["artifacts"]}["tflite-fp16"]
    assert row["gate"] == "fail"
    # the failed artifact was explained layer by layer, and the report links the page
    run_dir = e2e["build"] / "runs" / "tiny__test-host"
    page = json.loads((run_dir / "debug" / "tflite-fp16.json").read_text())
    assert page["artifact"]["sha256"] == row["sha256"] and len(page["layers"]) >= 15
    assert row["debug"]["page"] == "debug/tflite-fp16.md" and row["debug"]["worst_layer"] == page["worst_layer"]
    assert "[debug/tflite-fp16.md](debug/tflite-fp16.md)" in (run_dir / "report.md").read_text()
    assert not (run_dir / "debug" / "tflite-fp32.json").exists()  # it passed: nothing to explain


def test_no_gates_finishes_and_marks_the_failure(e2e, tmp_path, test_target):
    recipe = write_recipe(tmp_path, "tiny", **{"tolerances.fp16.max_abs_diff": "1e-9"})
    proc = cli("run", "--recipe", str(recipe), "--target", str(test_target), "--build-dir", str(e2e["build"]),
               "--no-gates")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads((e2e["build"] / "runs" / "tiny__test-host" / "report.json").read_text())
    rows = {r["name"]: r for r in rep["artifacts"]}
    assert rows["tflite-fp16"]["gate"] == "fail" and rows["tflite-fp32"]["gate"] == "pass"
    assert rep["gates"]["enforced"] is False and rep["gates"]["violations"]


def test_compression_gate_names_artifact_drop_and_limit(e2e, tmp_path, test_target):
    # Limits of 0 points: some pruned or int8 artifact of the reduced recipe is below the fp32 model (the pruned
    # model alone may tie it on 400 images, as it did once), and the line names it, its drop and the limit's key.
    recipe = write_recipe(tmp_path, "tiny", **{"prune.max_accuracy_drop": "0.0", "quantize.max_accuracy_drop": "0.0"})
    proc = cli("run", "--recipe", str(recipe), "--target", str(test_target), "--build-dir", str(e2e["build"]))
    assert proc.returncode == 3, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "pruned" in line and "points against the fp32 model > 0.0 (" in line
    assert "(prune.max_accuracy_drop)" in line or "(quantize.max_accuracy_drop)" in line
    assert "[prune] cached" in proc.stderr and "[quantize] cached" in proc.stderr  # only evaluation reran

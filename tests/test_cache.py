"""Stage caching: the same run does no work; one changed setting reruns that stage and the ones after it."""

from __future__ import annotations

import json

from tests.conftest import cli, write_target


def _stages(build, name="tiny__test-host") -> dict[str, bool]:
    manifest = json.loads((build / "runs" / name / "manifest.json").read_text())
    return {s["name"]: s["cached"] for s in manifest["stages"]}


def test_second_run_is_fully_cached_and_says_so(e2e, tiny_recipe, test_target):
    proc = cli("run", "--recipe", str(tiny_recipe), "--target", str(test_target), "--build-dir", str(e2e["build"]))
    assert proc.returncode == 0, proc.stderr
    cached = _stages(e2e["build"])
    assert all(cached[s] for s in ("train", "to_onnx", "to_tflite", "to_executorch", "evaluate", "benchmark"))
    assert "[train] cached" in proc.stderr and "[benchmark] cached" in proc.stderr


def test_changed_benchmark_setting_reruns_only_the_benchmark(e2e, tiny_recipe, workspace, tmp_path):
    target = write_target(tmp_path, runs=7)
    proc = cli("run", "--recipe", str(tiny_recipe), "--target", str(target), "--build-dir", str(e2e["build"]))
    assert proc.returncode == 0, proc.stderr
    cached = _stages(e2e["build"])
    assert cached["train"] and cached["to_onnx"] and cached["to_tflite"] and cached["evaluate"]
    assert not cached["benchmark"]


def test_from_reruns_that_stage_and_later_ones(e2e, tiny_recipe, test_target):
    proc = cli("run", "--recipe", str(tiny_recipe), "--target", str(test_target), "--build-dir", str(e2e["build"]),
               "--from", "on_device")  # the last cached stage: the rerun is cheap, the rule is the same
    assert proc.returncode == 0, proc.stderr
    cached = _stages(e2e["build"])
    assert cached["evaluate"] and cached["benchmark"] and not cached["on_device"]
    assert "[on_device] running" in proc.stderr and "[benchmark] cached" in proc.stderr


def test_only_needs_cached_inputs(tmp_path, tiny_recipe, test_target):
    proc = cli("run", "--recipe", str(tiny_recipe), "--target", str(test_target), "--build-dir", str(tmp_path),
               "--only", "evaluate")
    assert proc.returncode == 2
    assert "stage 'train' has no cached result" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_stage_name_is_a_clear_error(tiny_recipe, test_target, tmp_path):
    proc = cli("run", "--recipe", str(tiny_recipe), "--target", str(test_target), "--build-dir", str(tmp_path),
               "--from", "quantise")
    assert proc.returncode == 2 and "unknown stage 'quantise'" in proc.stderr


def test_a_stage_key_follows_the_helpers_it_imports(tmp_path, monkeypatch):
    # Editing compression/pruning.py must change the prune stage's key, not only editing stages/prune.py.
    import shutil

    import pipeline.engine.code_version as cv

    copy = tmp_path / "pipeline"
    shutil.copytree(cv.ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cv, "ROOT", copy)
    cv.closure.cache_clear()
    before = cv.code_hash(copy / "stages" / "prune.py")
    report_before = cv.code_hash(copy / "stages" / "report.py")
    helper = copy / "compression" / "pruning.py"
    helper.write_text(helper.read_text() + "\n# changed\n")
    cv.closure.cache_clear()
    assert cv.code_hash(copy / "stages" / "prune.py") != before
    assert cv.code_hash(copy / "stages" / "report.py") == report_before  # unrelated stages keep their keys
    cv.closure.cache_clear()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, tiny_recipe, test_target):
    build = tmp_path / "build"
    proc = cli("run", "--recipe", str(tiny_recipe), "--target", str(test_target), "--build-dir", str(build),
               "--dry-run")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[2:] if line.startswith("  ")}
    assert rows["train"] == "run" and rows["to_executorch"] == "background" and rows["report"] == "rebuild"
    assert "decompose.enabled = false" in proc.stdout and "host target" in proc.stdout
    assert not build.exists()  # no cache folder, no run folder, no lock


def test_dry_run_after_a_run_shows_every_stage_cached(e2e, tiny_recipe, test_target):
    proc = cli("run", "--recipe", str(tiny_recipe), "--target", str(test_target), "--build-dir", str(e2e["build"]),
               "--dry-run", "--from", "benchmark")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[2:] if line.startswith("  ")}
    assert all(rows[s] == "cached" for s in ("train", "prune", "quantize", "to_onnx", "to_tflite", "evaluate"))
    assert rows["benchmark"] == "run" and "--from benchmark" in proc.stdout
    keys = {line.split()[0]: line.split()[2] for line in proc.stdout.splitlines()[2:] if line.startswith("  ")}
    manifest = {s["name"]: s["key"][:12] for s in e2e["manifest"]["stages"]}
    assert all(keys[name] == manifest[name] for name in manifest)  # the plan's keys are the run's keys

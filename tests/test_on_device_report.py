"""The on-device parts that need no device: which artifacts a target runs, kept partial results, the report table."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.partial_results import PartialResults, part_key
from pipeline.engine.recipes import load_recipe
from pipeline.recipe.targets import load_target
from pipeline.report.devices_section import markdown, rows
from pipeline.stages.contract import Context, RunFlags, StageOutput
from pipeline.stages.on_device import device_artifacts, remeasure, violations


def artifact(name: str, fmt: str, role: str = "model") -> Artifact:
    return Artifact(name, f"/x/{name}", fmt, "fp32", "NCHW", (1, 1, 28, 28), role=role)


def context(target: str, tmp_path: Path) -> Context:
    arts = (artifact("tflite-fp32", "tflite"), artifact("pte-fp32", "pte"), artifact("onnx-fp32", "onnx"),
            artifact("pte-calibration", "pte", role="intermediate"))
    return Context(load_recipe("fashion-mnist-mobilenetv2"), load_target(target), {"x": StageOutput(arts)}, tmp_path,
                   1, logging.getLogger("test"))


def test_emulated_phone_runs_both_runtimes_and_never_intermediates(tmp_path):
    chosen, left_out = device_artifacts(context("emulated-arm64", tmp_path))
    assert [a.name for a in chosen] == ["tflite-fp32", "pte-fp32"] and left_out == {}


def test_loopback_runs_only_the_runtimes_its_target_lists(tmp_path):
    chosen, left_out = device_artifacts(context("adb-loopback", tmp_path))
    assert [a.name for a in chosen] == ["pte-fp32"]
    assert "not in the target's [device] runtimes" in left_out["tflite-fp32"]


def test_phone_leaves_tflite_out_with_the_reason_when_its_runner_is_benchmark_model(tmp_path):
    chosen, left_out = device_artifacts(context("pixel-8", tmp_path))
    assert [a.name for a in chosen] == ["pte-fp32"] and "benchmark_model" in left_out["tflite-fp32"]


def test_partial_results_survive_and_keys_follow_every_setting(tmp_path):
    parts = PartialResults(tmp_path)
    key = part_key("sha", {"runs": 5})
    assert parts.load(key) is None
    parts.save(key, {"host_agreement": 1.0})
    assert PartialResults(tmp_path).load(key) == {"host_agreement": 1.0}
    assert part_key("sha", {"runs": 6}) != key


def test_force_or_from_measures_again_while_a_plain_rerun_continues():
    def opts(force: bool = False, start: str | None = None) -> RunFlags:
        return RunFlags(force=force, from_stage=start)

    assert not remeasure(opts()) and not remeasure(opts(start="report"))
    assert remeasure(opts(force=True)) and remeasure(opts(start="on_device")) and remeasure(opts(start="benchmark"))


def on_device_manifest(emulated: bool) -> dict:
    result = {"format": "pte", "precision": "fp32", "device": "dev", "serial": "s:1", "emulated": emulated,
              "abi": "aarch64", "runtime": "executorch", "samples": 16, "accuracy": 0.9, "host_accuracy": 0.9,
              "host_agreement": 1.0, "max_abs_diff": 0.0, "max_rel_diff": 0.0, "max_diff_steps": None,
              "latency_ms": {"runs": 3, "p50": 50.0, "p90": 60.0, "p99": 61.0, "mean": 52.0, "std": 4.0, "cv": 0.08,
                             "trimmed_mean": 51.0, "min": 48.0, "max": 61.0},
              "load_ms": 10.0, "threads": 1, "warmup": 1, "core_mask": "1", "core_mask_applied": True,
              "cooldown_s": 0.0, "thermal_before": {"cpu": 40000}, "thermal_after": {"cpu": 42500}}
    return {"stages": [{"name": "on_device", "data": {"results": {"pte-fp32": result}}}]}


def test_emulated_latency_is_labelled_as_such_in_the_table():
    lines = markdown(rows(on_device_manifest(emulated=True)))
    header = next(line for line in lines if line.startswith("| artifact"))
    assert "emulated latency (not comparable with phones)" in header
    assert any("| pte-fp32 | executorch | fp32 | 0.9000 | 0.9000 | 1.0000 |" in line for line in lines)


def test_phone_latency_is_not_labelled_emulated_and_shows_temperatures():
    device_rows = rows(on_device_manifest(emulated=False))
    assert device_rows[0]["emulated"] is False and device_rows[0]["latency_ms"]["trimmed_mean"] == 51.0
    text = "\n".join(markdown(device_rows))
    assert "emulated" not in text and "40.0 -> 42.5" in text


def test_host_run_has_no_device_rows():
    assert rows({"stages": [{"name": "on_device", "data": {"skipped": "host target"}}]}) == []
    assert markdown([]) == []


def test_device_outputs_that_disagree_with_the_host_fail_the_on_device_gate():
    target = load_target("emulated-arm64")
    results = {"pte-fp32": {"device": "emulated-arm64", "host_agreement": 1.0},
               "tflite-int8": {"device": "emulated-arm64", "host_agreement": 0.9}}
    found = violations(results, target)
    assert found == ["tflite-int8 on emulated-arm64: host agreement 0.9000 < 0.98 "
                     "(validation.min_host_agreement in emulated-arm64.toml)"]
    manifest = on_device_manifest(emulated=True)
    manifest["stages"][0]["data"]["gate_violations"] = ["pte-fp32 on dev: host agreement 0.5000 < 0.98 (...)"]
    (row,) = rows(manifest)
    assert row["gate"] == "fail" and row["violations"] and markdown([row])[-2].endswith("| fail |")
    assert rows(on_device_manifest(emulated=True))[0]["gate"] == "pass"

"""The release's selection rule and metadata entries on synthetic reports: gates, ties, and extra stage keys."""

from __future__ import annotations

import numpy as np

from pipeline.release.metadata import artifact_entry, to_artifact
from pipeline.release.select import choose


def _row(name: str, fmt: str, p50: float | None, gate: str = "pass", size: int = 1000, precision: str = "fp32"):
    return {"name": name, "format": fmt, "precision": precision, "size_bytes": size, "gate": gate,
            "latency_ms": None if p50 is None else {"p50": p50}}


def test_the_fastest_passing_artifact_of_each_format_is_chosen_and_failures_are_not() -> None:
    report = {"artifacts": [
        _row("torch-fp32", "torch", 0.01),
        _row("tflite-fp32", "tflite", 0.07),
        _row("tflite-int8", "tflite", 0.03, precision="int8"),
        _row("tflite-int8-pruned", "tflite", 0.02, gate="fail", precision="int8"),
        _row("pte-fp32", "pte", 0.08),
        _row("pte-int8", "pte", None, precision="int8"),
    ]}
    chosen = {c.name for c in choose(report) if c.chosen}
    assert chosen == {"tflite-int8", "pte-fp32"}
    assert [c.name for c in choose(report)] == ["tflite-fp32", "tflite-int8", "tflite-int8-pruned", "pte-fp32",
                                                "pte-int8"]


def test_equal_latency_goes_to_the_smaller_file() -> None:
    report = {"artifacts": [_row("tflite-fp32", "tflite", 0.05, size=400), _row("tflite-fp16", "tflite", 0.05,
                                                                               size=200)]}
    assert [c.name for c in choose(report) if c.chosen] == ["tflite-fp16"]


def test_a_format_with_no_passing_artifact_ships_nothing_for_it() -> None:
    report = {"artifacts": [_row("tflite-fp32", "tflite", 0.05, gate="fail"), _row("pte-fp32", "pte", 0.08)]}
    assert [c.name for c in choose(report) if c.chosen] == ["pte-fp32"]


def _device_row(name: str, fmt: str, p50: float, gate: str = "pass") -> dict:
    return {"name": name, "format": fmt, "device": "phone", "latency_ms": {"p50": p50}, "gate": gate,
            "serial": "X1", "abi": "arm64-v8a", "emulated": False}


def test_a_format_the_device_ran_is_ranked_by_the_device_latency_not_the_host() -> None:
    # On the host fp32 is fastest; on the phone int8 is: the phone's numbers decide for the format it ran (pte).
    report = {"target": {"name": "phone"}, "artifacts": [
        _row("pte-fp32", "pte", 0.03), _row("pte-int8", "pte", 0.05, precision="int8"),
        _row("tflite-fp32", "tflite", 0.04), _row("tflite-int8", "tflite", 0.06, precision="int8"),
    ], "on_device": [_device_row("pte-fp32", "pte", 9.0), _device_row("pte-int8", "pte", 4.0)]}
    pool = {c.name: c for c in choose(report)}
    assert [n for n, c in pool.items() if c.chosen] == ["pte-int8", "tflite-fp32"]
    assert pool["pte-int8"].latency_source == "device" and pool["pte-int8"].p50_ms == 4.0
    assert pool["pte-int8"].host_p50_ms == 0.05
    assert pool["tflite-fp32"].latency_source == "host" and pool["tflite-fp32"].device_gate is None


def test_an_artifact_that_failed_or_skipped_the_device_is_not_shipped_to_it() -> None:
    report = {"target": {"name": "phone"}, "artifacts": [
        _row("pte-fp32", "pte", 0.03), _row("pte-int8", "pte", 0.05, precision="int8"),
        _row("pte-fp16", "pte", 0.01, precision="fp16"),
    ], "on_device": [_device_row("pte-fp32", "pte", 9.0), _device_row("pte-int8", "pte", 4.0, gate="fail")]}
    pool = {c.name: c for c in choose(report)}
    assert [n for n, c in pool.items() if c.chosen] == ["pte-fp32"]
    assert pool["pte-fp16"].device_gate == "not run on the device" and pool["pte-fp16"].p50_ms is None


def test_on_device_rows_of_another_device_do_not_count() -> None:
    report = {"target": {"name": "host"}, "artifacts": [_row("pte-fp32", "pte", 0.03), _row("pte-int8", "pte", 0.05)],
              "on_device": [_device_row("pte-int8", "pte", 4.0)]}
    assert [c.name for c in choose(report) if c.chosen] == ["pte-fp32"]


def test_extra_keys_of_later_stages_are_carried_into_the_metadata_entry() -> None:
    record = {"name": "tflite-int8", "path": "/abs/cache/model_int8.tflite", "format": "tflite", "precision": "int8",
              "layout": "NHWC", "input_shape": [1, 28, 28, 1], "input_dtype": "int8",
              "input_quantization": {"scale": 0.02, "zero_point": -3},
              "output_quantization": {"scale": 0.1, "zero_point": 5}, "sha256": "a" * 64, "size_bytes": 10,
              "tools": {}, "extra": {"source": "/abs/cache/model.onnx", "calibration": 64},
              "quantization": "qat", "pruned": True, "params": 45482, "macs": 3151394, "calibration_images": 64}
    entry = artifact_entry(record, [np.zeros((16, 10), np.float32)])
    assert entry["file"] == "models/tflite-int8.tflite"
    # a record of before the tensor lists: its one input and output from the legacy fields, the output's shape from
    # the recorded outputs
    assert entry["inputs"] == [{"name": "input", "shape": [1, 28, 28, 1], "dtype": "int8", "layout": "NHWC",
                                "quantization": {"scale": 0.02, "zero_point": -3}}]
    assert entry["outputs"] == [{"name": "output", "shape": [1, 10], "dtype": "int8",
                                 "quantization": {"scale": 0.1, "zero_point": 5},
                                 "sample_outputs": "samples/outputs/tflite-int8.npy"}]
    assert entry["quantization"] == "qat" and entry["pruned"] is True and entry["macs"] == 3151394
    assert entry["calibration_images"] == 64  # a key the pipeline does not know yet is carried over as it is
    assert entry["details"] == {"calibration": 64}  # absolute paths stay out of bundles
    assert "path" not in entry
    art = to_artifact(record, "/bundle/models/tflite-int8.tflite")
    assert art.path == "/bundle/models/tflite-int8.tflite" and art.input_quantization["zero_point"] == -3

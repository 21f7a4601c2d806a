"""The report names each int8 artifact that is slower than, or within noise of, its float source, with the numbers."""

from __future__ import annotations

from pipeline.report.int8_payoff import markdown, not_paying


def _row(name: str, fmt: str, precision: str, rounds: list[float], pruned: bool = False) -> dict:
    ordered = sorted(rounds)
    return {"name": name, "format": fmt, "precision": precision, "pruned": pruned, "lowrank": False,
            "quantization": "ptq" if precision == "int8" else "none", "round_p50_ms": rounds,
            "latency_ms": {"p50": ordered[(len(ordered) - 1) // 2]}}


FP32 = [8.0, 8.2, 7.9, 8.1, 8.3]


def test_int8_clearly_faster_than_its_float_source_is_not_listed():
    rows = [_row("pte-fp32", "pte", "fp32", FP32), _row("pte-int8-ptq", "pte", "int8", [4.0, 4.1, 4.2, 3.9, 4.0])]
    assert not_paying(rows) == []
    assert markdown(not_paying(rows)) == []


def test_int8_slower_than_its_float_source_is_named_with_its_numbers():
    rows = [_row("tflite-fp32", "tflite", "fp32", FP32),
            _row("tflite-int8-ptq", "tflite", "int8", [9.0, 9.3, 9.1, 9.2, 9.4])]
    [found] = not_paying(rows)
    assert found["artifact"] == "tflite-int8-ptq" and found["float_source"] == "tflite-fp32"
    assert found["verdict"] == "slower" and found["ci_high"] < 1.0
    text = "\n".join(markdown([found]))
    assert "`tflite-int8-ptq` is slower" in text and "9.200 ms against 8.100 ms" in text and "0.88x" in text


def test_int8_within_noise_is_listed_and_a_pruned_int8_is_held_to_the_pruned_float():
    # the pruned int8 is 2x faster than the unpruned fp32 but no faster than the pruned fp32 it was made from
    rows = [_row("pte-fp32", "pte", "fp32", FP32),
            _row("pte-pruned-fp32", "pte", "fp32", [4.0, 4.4, 3.9, 4.3, 4.1], pruned=True),
            _row("pte-pruned-int8-ptq", "pte", "int8", [4.2, 3.9, 4.4, 4.0, 4.1], pruned=True),
            _row("pte-int8-ptq", "pte", "int8", [4.0, 4.1, 4.2, 3.9, 4.0])]
    found = not_paying(rows)
    assert [f["artifact"] for f in found] == ["pte-pruned-int8-ptq"]
    assert found[0]["float_source"] == "pte-pruned-fp32"
    assert found[0]["verdict"] == "within noise" and found[0]["ci_low"] <= 1.0 <= found[0]["ci_high"]


def test_an_int8_artifact_without_a_timed_float_source_is_not_judged():
    rows = [_row("pte-int8-ptq", "pte", "int8", [4.0, 4.1, 4.2]), _row("tflite-fp32", "tflite", "fp32", FP32)]
    assert not_paying(rows) == []

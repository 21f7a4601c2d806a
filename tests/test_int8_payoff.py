"""The report names each int8 artifact that is slower than, or within noise of, its float source, with the numbers
and the op that costs it most, from a real per-operator profile of the real file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import conv_relu6_programs

from pipeline.artifacts.artifact import Artifact, sha256_file
from pipeline.measure.executorch_ops import OVERHEAD
from pipeline.report.int8_payoff import attach_costliest_ops, markdown, not_paying, op_kind
from pipeline.stages.report import profile_not_paying


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


# The costliest op: real programs, profiled for real by the report stage's own function.

SHAPE = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, Artifact]:
    """A real fp32 and int8 .pte of one small conv network, lowered by the pipeline's own functions."""
    paths = conv_relu6_programs(tmp_path_factory.mktemp("programs"), SHAPE)
    return {"pte-fp32": _artifact("pte-fp32", paths["fp32"], "pte", "fp32"),
            "pte-int8-ptq": _artifact("pte-int8-ptq", paths["int8"], "pte", "int8")}


def _artifact(name: str, path: Path, fmt: str, precision: str) -> Artifact:
    return Artifact(name=name, path=str(path), format=fmt, precision=precision, layout="NCHW", input_shape=SHAPE,
                    sha256=sha256_file(path), size_bytes=path.stat().st_size,
                    quantization="ptq" if precision == "int8" else "none")


def _rows_of(arts: dict[str, Artifact], int8_rounds: list[float]) -> list[dict]:
    rows = []
    for a in arts.values():
        row = _row(a.name, a.format, a.precision, int8_rounds if a.precision == "int8" else FP32)
        rows.append({**row, "sha256": a.sha256})
    return rows


def _picture(art: Artifact) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)


SLOWER = [9.0, 9.3, 9.1, 9.2, 9.4]


def test_an_int8_pte_that_does_not_pay_names_the_costliest_op_of_its_real_profile(programs, tmp_path):
    rows = _rows_of(programs, SLOWER)
    assert profile_not_paying(rows, programs, tmp_path, _picture) == {"pte-int8-ptq": "done", "pte-fp32": "done"}
    pages = {n: json.loads((tmp_path / "profile" / f"{n}.json").read_text()) for n in programs}
    [found] = not_paying(rows)
    attach_costliest_ops([found], rows, tmp_path)
    c = found["costliest_op"]

    events = pages["pte-int8-ptq"]["profile"]["events"]
    ops = [e for e in events if e["name"] != OVERHEAD]
    assert c["op"] == max(ops, key=lambda e: e["p50_ms"])["name"]  # the op that costs most, as the page has it
    assert 0.0 < c["share"] < 1.0 and c["p50_ms"] > 0
    assert c["overhead_share"] == pytest.approx(next(e["share"] for e in events if e["name"] == OVERHEAD))
    assert (c["runtime"], c["threads"], c["runs"]) == ("executorch", 1, 10)
    float_kinds = {op_kind(e["name"]): e["name"] for e in pages["pte-fp32"]["profile"]["events"]}
    assert (c["float"] or {}).get("op") == float_kinds.get(op_kind(c["op"]))

    line = "\n".join(markdown([found]))
    share = re.search(r"Costliest op: `([^`]+)` \([^)]*\), ([\d.]+)% of the invoke", line)
    assert share and share.group(1) in {e["name"] for e in events} and 0.0 < float(share.group(2)) < 100.0
    assert f"`phone-pipeline profile {tmp_path} pte-int8-ptq`" in line
    assert "(executorch, 1 thread(s), 10 runs after 2 warm-up)" in line
    # a rebuilt report reads the same pages: nothing is profiled again, the line is the same
    assert profile_not_paying(rows, programs, tmp_path, _picture) == {}
    again = not_paying(rows)
    attach_costliest_ops(again, rows, tmp_path)
    assert markdown(again) == markdown([found])


def test_an_int8_pte_that_pays_is_not_profiled(programs, tmp_path):
    rows = _rows_of(programs, [4.0, 4.1, 4.2, 3.9, 4.0])
    assert profile_not_paying(rows, programs, tmp_path, _picture) == {}
    assert not (tmp_path / "profile").exists()


def test_a_program_that_cannot_be_profiled_is_said_in_its_line_and_the_run_goes_on(programs, tmp_path):
    broken = tmp_path / "pte-int8-ptq.pte"
    broken.write_bytes(b"not a program" * 64)
    arts = {**programs, "pte-int8-ptq": _artifact("pte-int8-ptq", broken, "pte", "int8")}
    rows = _rows_of(arts, SLOWER)
    done = profile_not_paying(rows, arts, tmp_path / "run", _picture)
    assert done["pte-fp32"] == "done" and done["pte-int8-ptq"] != "done"
    found = not_paying(rows)
    attach_costliest_ops(found, rows, tmp_path / "run")
    assert found[0]["costliest_op"]["op"] is None
    line = "\n".join(markdown(found))
    assert "Costliest op: not named, profiling failed: " in line and "`phone-pipeline profile " in line
    assert "could not be profiled" in (tmp_path / "run" / "profile" / "pte-int8-ptq.md").read_text()


def test_a_page_of_an_earlier_file_of_the_same_name_is_not_quoted(programs, tmp_path):
    rows = _rows_of(programs, SLOWER)
    profile_not_paying(rows, programs, tmp_path, _picture)
    rows = [{**r, "sha256": "0" * 64} if r["name"] == "pte-int8-ptq" else r for r in rows]
    found = not_paying(rows)
    attach_costliest_ops(found, rows, tmp_path)
    assert found[0]["costliest_op"]["why"] == "not profiled in this run"
    # the other way round: the int8 page is there but not its float source's, which the line must not call "no op"
    rows = _rows_of(programs, SLOWER)
    rows = [{**r, "sha256": "0" * 64} if r["name"] == "pte-fp32" else r for r in rows]
    found = not_paying(rows)
    attach_costliest_ops(found, rows, tmp_path)
    assert found[0]["costliest_op"]["float"] is None and not found[0]["costliest_op"]["float_profiled"]
    assert "`pte-fp32` has no per-operator profile in this run" in "\n".join(markdown(found))


def test_an_int8_tflite_line_says_litert_has_no_per_operator_time(tmp_path):
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((8, 8, 3), batch_size=1), tf.keras.layers.Conv2D(4, 3),
                                 tf.keras.layers.ReLU(), tf.keras.layers.GlobalAveragePooling2D(),
                                 tf.keras.layers.Dense(2)])
    rng = np.random.default_rng(0)

    def calibration():
        return ([rng.standard_normal((1, 8, 8, 3), dtype=np.float32)] for _ in range(8))

    arts = {}
    for precision in ("fp32", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if precision == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = calibration
        name = f"tflite-{precision}" + ("-ptq" if precision == "int8" else "")
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(converter.convert())
        arts[name] = _artifact(name, path, "tflite", precision)
    rows = [{**r, "format": "tflite"} for r in _rows_of(arts, SLOWER)]
    assert profile_not_paying(rows, arts, tmp_path, _picture) == {"tflite-int8-ptq": "done", "tflite-fp32": "done"}
    found = not_paying(rows)
    attach_costliest_ops(found, rows, tmp_path)
    c = found[0]["costliest_op"]
    assert c["op"] is None and c["op_count"] >= 4 and c["integer_ops"] >= 1
    assert "LiteRT's Python API gives no per-operator time" in "\n".join(markdown(found))

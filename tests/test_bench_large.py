"""`make bench-large` on tiny settings: the report has a row per artifact with the promised columns and numbers that
can be true (issue 10, item 5). Real converters and runtimes; the full run is `make bench-large`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli

TINY = ("--models", "mobilenetv2-100", "--size", "64", "--prune", "0.3,0.5", "--rounds", "2", "--runs", "3",
        "--warmup", "1", "--gemm-size", "256")
COLUMNS = ("MACs (hook)", "MACs (ONNX)", "p50 ms", "min ms", "vs fp32 same runtime", "GMAC/s", "% of peak",
           "top-1 agreement vs PyTorch fp32", "load")


def _report(tmp_path, *runtimes: str) -> tuple[dict, str]:
    out = tmp_path / "bl"
    # 303 s alone on 2 cores; over 1,200 s at load 5-6 beside other test runs, so the hang guard is looser here
    proc = cli("bench-large", *TINY, "--runtimes", ",".join(runtimes), "--out", str(out), timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out / "report.md")
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def _check_rows(rep: dict, md: str, expected: set[str]) -> dict:
    rows = {r["artifact"]: r for r in rep["rows"]}
    assert set(rows) == expected
    for column in COLUMNS:
        assert column in md
    peak = rep["peak"]
    assert 0 < peak["fp32"]["gmacs"] < 10_000 and 0 < peak["int8"]["gmacs"] < 10_000
    for name, r in rows.items():
        assert name in md
        assert r["p50_ms"] > 0 and r["min_ms"] <= r["p50_ms"]
        assert abs(r["gmacs"] - r["macs_hook"] / r["p50_ms"] / 1e6) < 1e-6 * r["gmacs"]
        assert r["gmacs"] > 0 and r["percent_of_peak"] > 0
        # a 64x64 network of depthwise layers is far from a large GEMM's rate in any runtime
        assert r["percent_of_peak"] < 100, (name, r["percent_of_peak"])
        assert abs(r["macs_onnx"] - r["macs_hook"]) <= 0.01 * r["macs_hook"], name  # two independent counts
        assert 0.0 <= r["top1_agreement"] <= 1.0
        assert len(r["round_p50s_ms"]) == 2
    assert rows["onnx-pruned50-fp32"]["macs_hook"] < rows["onnx-pruned30-fp32"]["macs_hook"] < \
        0.7 * rows["onnx-fp32"]["macs_hook"]
    assert rows["onnx-fp32"]["top1_agreement"] == 1.0  # the fp32 file is the PyTorch model
    assert rows["onnx-fp32"]["speedup"] is None
    for pruned in ("onnx-pruned30-fp32", "onnx-pruned50-fp32"):  # each ratio its own row, against the same fp32
        assert rows[pruned]["speedup"]["baseline"] == "mobilenetv2-100/onnx-fp32"
        assert rows[pruned]["speedup"]["ratio"] > 0
    assert "random init with BatchNorm statistics" in md
    return rows


def test_bench_large_reports_every_artifact_with_macs_speed_and_peak(tmp_path):
    rep, md = _report(tmp_path, "onnxruntime")
    _check_rows(rep, md, {"onnx-fp32", "onnx-pruned30-fp32", "onnx-pruned50-fp32"})
    assert rep["benchmark"]["rounds"] == 2 and "machine" in rep["benchmark"]


@pytest.mark.slow  # onnx2tf and two ExecuTorch lowerings per variant: minutes
def test_bench_large_covers_fp16_int8_and_pruned_in_the_three_runtimes(tmp_path):
    rep, md = _report(tmp_path, "litert", "executorch", "onnxruntime")
    rows = _check_rows(rep, md, {
        "onnx-fp32", "tflite-fp32", "tflite-fp16", "tflite-int8-ptq", "pte-fp32", "pte-int8-ptq",
        *(f"{fmt}-pruned{pct}-{p}" for pct in (30, 50) for fmt, p in (
            ("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "int8-ptq"), ("pte", "fp32"), ("pte", "int8-ptq")))})
    assert rows["tflite-fp32"]["top1_agreement"] == rows["pte-fp32"]["top1_agreement"] == 1.0
    assert rows["tflite-int8-ptq"]["peak"] == rows["pte-int8-ptq"]["peak"] == "int8"
    assert rows["tflite-fp16"]["peak"] == "fp32"
    assert rows["tflite-int8-ptq"]["size_bytes"] < 0.4 * rows["tflite-fp32"]["size_bytes"]


def test_bench_large_refuses_an_unknown_model_in_one_line(tmp_path):
    proc = cli("bench-large", "--models", "resnet-9000", "--out", str(tmp_path / "bl"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: bench-large: unknown model 'resnet-9000': the models are "
                                   "efficientnet-lite0, mobilenetv2-100")
    assert "Traceback" not in proc.stderr and not (tmp_path / "bl").exists()


@pytest.mark.parametrize("args, says", [
    (("--runtimes", "tvm"), "unknown runtime 'tvm'"),
    (("--prune", "1.5"), "prune ratio 1.5 is not in (0, 1)"),
    (("--prune", "half"), "not a comma-separated list of numbers"),
])
def test_bench_large_refuses_bad_settings_in_one_line(tmp_path, args, says):
    proc = cli("bench-large", *args, "--out", str(tmp_path / "bl"))
    assert proc.returncode == 2
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr

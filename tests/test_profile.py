"""Per-operator profiles: a tiny conv model lowered fp32 and int8 by the pipeline's own functions, run in ExecuTorch
with ETDump on; the CLI on a hand-written run folder (a real .pte, a manifest naming it) and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import conv_relu6_programs

from pipeline.artifacts.artifact import Artifact, sha256_file
from tests.networks import assert_outputs_differ_per_input, varied_inputs

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (1, 3, 224, 224)  # the photos recipe's input: the CLI feeds one of its evaluation pictures


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, Path]:
    return conv_relu6_programs(tmp_path_factory.mktemp("programs"), SHAPE, stride=4, calibration=4)


def _profile(path: Path) -> dict:
    from pipeline.measure.executorch_ops import profile_program

    return profile_program(path, torch.randn(*SHAPE), runs=3, threads=1, warmup=1)


def test_profile_rows_are_delegated_xnnpack_kernels_whose_shares_add_to_one(programs):
    result = _profile(programs["fp32"])
    delegated = [e for e in result["events"] if e["delegated"]]
    assert result["backends"] == ["XnnpackBackend"] and result["portable_operators"] == []
    assert delegated and all(e["backend"] == "XnnpackBackend" for e in delegated)
    assert sum(e["share"] for e in result["events"]) == pytest.approx(1.0)
    assert sum(k["share"] for k in result["kernels"]) == pytest.approx(1.0)
    assert result["execute_p50_ms"] > 0
    assert any(k["kernel"].startswith("Convolution (NHWC, F32)") for k in result["kernels"])


def test_int8_program_runs_quantized_convolution_kernels(programs):
    kernels = {k["kernel"]: k for k in _profile(programs["int8"])["kernels"]}
    assert any(k.startswith("Convolution (NHWC, QC8)") for k in kernels), sorted(kernels)
    assert not any(k.startswith("Convolution (NHWC, F32)") for k in kernels), sorted(kernels)
    categories = {k["category"] for k in kernels.values()}
    assert "convolution int8" in categories and "convert (quantize/dequantize)" in categories


def _run_dir(folder: Path, artifacts: list[Artifact]) -> Path:
    """A run folder whose manifest records `artifacts` (the keys `manifest.load` checks, nothing more)."""
    recipe = ROOT / "pipeline" / "recipes" / "efficientnet-lite0.toml"
    manifest = {"created": "now", "recipe": {"name": "efficientnet-lite0", "path": str(recipe),
                                             "sha256": sha256_file(recipe),
                                             "settings": {}},
                "target": {"name": "host", "path": ""}, "host": {}, "tools": {}, "options": {},
                "stages": [{"name": "to_executorch", "cached": False, "seconds": 0, "data": {},
                            "artifacts": [a.to_dict() for a in artifacts]}]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _artifact(name: str, path: Path, fmt: str) -> Artifact:
    return Artifact(name=name, path=str(path), format=fmt, precision="int8", layout="NCHW", input_shape=SHAPE,
                    sha256=sha256_file(path), size_bytes=path.stat().st_size)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "profile", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_cli_writes_the_markdown_and_json_page_of_a_pte(programs, tmp_path):
    run_dir = _run_dir(tmp_path / "run", [_artifact("pte-int8-ptq", programs["int8"], "pte")])
    done = _cli(str(run_dir), "pte-int8-ptq", "--runs", "3")
    assert done.returncode == 0, done.stderr
    page = run_dir / "profile" / "pte-int8-ptq.md"
    assert done.stdout.strip().splitlines()[-1] == str(page)
    record = json.loads(page.with_suffix(".json").read_text())
    assert record["profile"]["runs"] == 3 and record["profile"]["threads"] == 1
    assert "Convolution (NHWC, QC8)" in page.read_text()
    assert not list((run_dir / "profile").glob(".*.tmp"))


def test_cli_refuses_an_unknown_artifact_in_one_line(programs, tmp_path):
    run_dir = _run_dir(tmp_path / "run", [_artifact("pte-int8-ptq", programs["int8"], "pte")])
    done = _cli(str(run_dir), "pte-nothing")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "pte-nothing" in done.stderr and "pte-int8-ptq" in done.stderr and "Traceback" not in done.stderr


def test_cli_refuses_an_unsupported_format_in_one_line(programs, tmp_path):
    run_dir = _run_dir(tmp_path / "run", [_artifact("onnx-fp32", programs["fp32"], "onnx")])
    done = _cli(str(run_dir), "onnx-fp32")
    assert done.returncode == 2
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and ".pte" in line and ".tflite" in line and "onnx" in line
    assert not (run_dir / "profile").exists()


def test_tflite_op_table_shows_integer_and_float_ops_without_timing(tmp_path):
    import numpy as np
    import tensorflow as tf

    from pipeline.measure.litert_ops import op_table

    model = tf.keras.Sequential([tf.keras.Input((8, 8, 3), batch_size=1), tf.keras.layers.Conv2D(4, 3),
                                 tf.keras.layers.ReLU(), tf.keras.layers.GlobalAveragePooling2D(),
                                 tf.keras.layers.Dense(2)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.standard_normal((1, 8, 8, 3), dtype=np.float32)]
                                                for _ in range(8))
    path = tmp_path / "tiny_int8.tflite"
    path.write_bytes(converter.convert())
    table = op_table(path)
    ops = {(o["op"], o["input_dtype"]) for o in table["ops"]}
    assert ("CONV_2D", "int8") in ops and ("QUANTIZE", "float32") in ops
    assert table["integer_ops"] >= 1 and table["op_count"] == sum(o["count"] for o in table["ops"])
    assert "no per-operator timing" in table["timing"]


class _SamePadded(nn.Module):
    """TensorFlow-style "same" padding as EfficientNet-Lite writes it: an explicit zero pad before each conv."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 8, 3, stride=2), nn.ReLU6())
        self.dw = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(8, 8, 3, groups=8), nn.ReLU6())
        self.head = nn.Sequential(nn.Conv2d(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dw(self.stem(x)))


def _lowered_matches(reference: torch.fx.GraphModule, calib: torch.Tensor, path: Path) -> None:
    """Lower `reference` to `path` and check the program reproduces it within two output quantization steps."""
    from executorch.runtime import Runtime

    from pipeline.converters.executorch_lowering import lower

    path.write_bytes(lower(reference, calib[:1])[0])
    method = Runtime.get().load_program(path).load_method("forward")
    with torch.no_grad():
        ref = reference(calib)
        got = torch.cat([method.execute([calib[i : i + 1]])[0] for i in range(len(calib))])
    assert_outputs_differ_per_input(ref.numpy())
    step = 2 * float(ref.abs().max()) / 255
    assert float((got - ref).abs().max()) <= 2 * step


def test_int8_zero_pads_run_in_int8_and_match_the_quantized_reference(tmp_path):
    from pipeline.compression.quantization import ptq

    torch.set_num_threads(1)
    model, calib = _SamePadded().eval(), varied_inputs(8, (3, 32, 32))
    path = tmp_path / "padded.pte"
    _lowered_matches(ptq(model, calib), calib, path)
    kernels = {k["kernel"]: k["count"] for k in _profile_at(path, calib[:1])["kernels"]}
    # before: each pad ran in fp32 between a dequantize and a quantize (Constant Pad X32, 2 Converts per pad)
    assert "Constant Pad (ND, X32)" not in kernels, kernels
    assert kernels.get("Convert (NC)") == 2, kernels  # the program's float input and output only


def test_a_padded_layer_kept_in_float_lowers_and_matches_the_quantized_reference(tmp_path):
    from pipeline.compression.quantization import ptq

    torch.set_num_threads(1)
    model, calib = _SamePadded().eval(), varied_inputs(8, (3, 32, 32))
    # failed to lower before ("Weight and Input should both be quantized"): XNNPACK tagged the float pad int8
    path = tmp_path / "fallback.pte"
    _lowered_matches(ptq(model, calib, float_modules=("dw.1",)), calib, path)
    kernels = {k["kernel"] for k in _profile_at(path, calib[:1])["kernels"]}
    assert "Convolution (NHWC, F32) DWConv" in kernels and "Convolution (NHWC, QC8) IGEMM" in kernels, kernels


def _profile_at(path: Path, x: torch.Tensor) -> dict:
    from pipeline.measure.executorch_ops import profile_program

    return profile_program(path, x, runs=2, threads=1, warmup=1)

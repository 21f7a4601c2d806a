"""to_tflite converts the pipeline's own ONNX files without onnxsim (half of each onnx2tf conversion here), because
the exporter's file is already simplified: the TFLite files must come out the same. If onnx2tf cannot convert a file
without onnxsim, the stage converts it again with it instead of failing. Real onnx2tf throughout."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.artifacts.artifact import Artifact
from pipeline.converters import onnx2tf_adapter
from pipeline.converters.onnx_export import export
from pipeline.core.errors import ToolError
from pipeline.stages import to_tflite


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A small conv net with BatchNorm, a residual add and a linear head, exported by the pipeline's exporter."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, 2, 1), torch.nn.BatchNorm2d(8), torch.nn.ReLU6())
            self.block = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, 1, 1, groups=8), torch.nn.BatchNorm2d(8))
            self.head = torch.nn.Linear(8, 10)

        def forward(self, x):
            x = self.stem(x)
            x = x + self.block(x)
            return self.head(x.mean((2, 3)))

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("onnxsim")
    export(Net().eval(), torch.zeros(1, 1, 16, 16), out / "net.onnx", 20)
    calib = np.random.default_rng(0).standard_normal((8, 16, 16, 1)).astype(np.float32)
    return out / "net.onnx", calib


def test_without_onnxsim_the_tflite_files_are_the_same(exported, tmp_path):
    onnx_path, calib = exported
    plain = onnx2tf_adapter.convert(onnx_path, tmp_path / "plain", calib, int8=False, simplify=False)
    simplified = onnx2tf_adapter.convert(onnx_path, tmp_path / "sim", calib, int8=False, simplify=True)
    assert set(plain) == set(simplified) == {"fp32", "fp16"}
    for precision in plain:
        assert plain[precision].read_bytes() == simplified[precision].read_bytes(), precision


def test_a_file_that_fails_without_onnxsim_is_converted_again_with_it(exported, tmp_path, monkeypatch, caplog):
    onnx_path, calib = exported
    real, calls = onnx2tf_adapter.convert, []

    def convert(path, work, calibration, int8, simplify=True, **kw):
        calls.append(simplify)
        if not simplify:
            raise ToolError("to_tflite: onnx2tf: exit code 1: an op it cannot convert unsimplified")
        return real(path, work, calibration, int8, simplify=simplify, **kw)

    monkeypatch.setattr(onnx2tf_adapter, "convert", convert)
    src = Artifact(name="onnx-fp32", path=str(onnx_path), format="onnx", precision="fp32", layout="NCHW",
                   input_shape=(1, 1, 16, 16))
    ctx = SimpleNamespace(out_dir=tmp_path, log=logging.getLogger("pipeline.to_tflite"))
    with caplog.at_level(logging.WARNING):
        arts = to_tflite.convert(ctx, [(src, ["fp32"])], calib)
    assert calls == [False, True]
    assert "failed without onnxsim" in caplog.text and "converting again with it" in caplog.text
    assert [a.name for a in arts] == ["tflite-fp32"] and Path(arts[0].path).stat().st_size > 0

"""PyTorch -> ONNX export of what the pipeline hands it, a torch.export program's module included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


def test_the_module_of_an_exported_int8_program_exports_to_onnx_with_its_outputs(tmp_path: Path) -> None:
    """A PT2E int8 reference is loaded as a torch.export program's module, which refuses eval(); `make evidence-qdq`
    exports it to a Q/DQ ONNX file."""
    import onnxruntime as ort

    from pipeline.compression.quantization import ptq
    from pipeline.converters.onnx_export import export

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU6(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    calib = torch.randn(8, 1, 8, 8)
    program = torch.export.export(ptq(model, calib), (calib[:1],))
    module = program.module()
    path = tmp_path / "qdq.onnx"
    export(module, calib[:1], path, 20)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = calib[:4].numpy()
    got = np.concatenate([session.run(None, {session.get_inputs()[0].name: x[i : i + 1]})[0] for i in range(4)])
    with torch.no_grad():
        want = np.concatenate([module(calib[i : i + 1]).numpy() for i in range(4)])
    assert not np.allclose(want[0], want[1])  # the outputs differ per input, so the comparison below can fail
    np.testing.assert_allclose(got, want, atol=0.05 * float(np.abs(want).max()))

"""No stage may touch the network: onnx2tf fetches sample images for RGB inputs unless we supply them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

CONVERT_RGB_MODEL = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np, torch
    from pipeline.converters import onnx2tf_adapter
    from pipeline.converters.onnx_export import export

    out = Path(sys.argv[1])
    torch.manual_seed(0)
    # A 3-channel 4-D input is exactly what makes onnx2tf download its sample images.
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    export(model, torch.zeros(1, 3, 32, 32), out / "rgb.onnx", 20)
    calib = np.random.default_rng(0).standard_normal((20, 32, 32, 3)).astype(np.float32)
    files = onnx2tf_adapter.convert(out / "rgb.onnx", out / "work", calib, int8=False, timeout=600)
    print(sorted(files))
""")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_conversion_of_an_rgb_model_succeeds_with_no_network_at_all(tmp_path):
    # A fresh network namespace has no interface but a downed loopback: any download attempt fails.
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", CONVERT_RGB_MODEL, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "['fp16', 'fp32']" in proc.stdout
    assert (tmp_path / "work" / "tf" / "model_float32.tflite").exists()


def test_network_guard_refuses_connections_in_the_converter_process():
    code = ("from pipeline.core.netguard import block_network, NetworkBlocked\nimport socket\nblock_network()\n"
            "try:\n    socket.create_connection(('127.0.0.1', 9))\nexcept NetworkBlocked:\n    print('refused')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "refused", proc.stderr

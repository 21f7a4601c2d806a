"""Two processes saving the same quantized program give the same .pt2 bytes, and the file still loads and runs.

torch's random part of the serialization id is drawn once per process, so the saves must come from two processes.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import torch

SAVE = """
import sys, torch
from pipeline.compression.quantization import ptq
from pipeline.stages.quantize import _save_reference
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(4 * 6 * 6, 3)).eval()
x = torch.randn(8, 1, 8, 8)
_save_reference(ptq(model, x), x[:2], sys.argv[1])
torch.save(x, sys.argv[1] + ".x")
"""


def test_two_processes_save_byte_identical_pt2_files_that_load(tmp_path):
    paths = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        paths.append(tmp_path / sub / "ref.pt2")
        proc = subprocess.run([sys.executable, "-c", SAVE, str(paths[-1])], capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with zipfile.ZipFile(paths[0]) as zf:
        assert zf.testzip() is None  # every CRC still right after the id was rewritten
    import torchao.quantization.pt2e  # noqa: F401  registers the quantized ops the program calls

    x = torch.load(str(paths[0]) + ".x")
    out = torch.export.load(str(paths[0])).module()(x[:2])
    assert out.shape == (2, 3) and torch.isfinite(out).all()

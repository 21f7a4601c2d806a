"""PyTorch running a saved torch.export program (.pt2): here, the PT2E-quantized reference of the int8 programs."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.artifact import Artifact


class TorchExportSession:
    runtime = "torch"

    def __init__(self, artifact: Artifact, threads: int):
        torch.set_num_threads(threads)
        import torchao.quantization.pt2e  # noqa: F401  registers the quantized_decomposed ops the program calls

        self.module = torch.export.load(artifact.path).module()

    def run(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.from_numpy(x)).numpy()

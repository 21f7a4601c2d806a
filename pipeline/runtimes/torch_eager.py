"""PyTorch eager: the reference every other runtime is compared with."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.artifact import Artifact
from pipeline.models.checkpoint import load_model


class TorchSession:
    runtime = "torch"

    def __init__(self, artifact: Artifact, threads: int):
        torch.set_num_threads(threads)
        self.model = load_model(artifact)

    def run(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.from_numpy(x)).numpy()

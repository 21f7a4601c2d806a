"""PyTorch eager: the reference every other runtime is compared with."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.artifacts.artifact import Artifact
from pipeline.models.checkpoint import load_model
from pipeline.runtimes import Session


class TorchSession(Session):
    runtime = "torch"

    def __init__(self, artifact: Artifact, threads: int):
        torch.set_num_threads(threads)
        self.artifact = artifact
        self.model = load_model(artifact)

    def prepare(self, x: np.ndarray) -> torch.Tensor:
        """float32 NCHW batch -> a tensor sharing its memory."""
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def invoke(self, prepared: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.model(prepared).numpy()

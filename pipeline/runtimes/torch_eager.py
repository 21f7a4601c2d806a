"""PyTorch eager: the reference every other runtime is compared with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.model_io import flat_outputs
from pipeline.models.checkpoint import load_model
from pipeline.runtimes import Session, to_artifact_inputs


class TorchSession(Session):
    runtime = "torch"

    def __init__(self, artifact: Artifact, threads: int):
        torch.set_num_threads(threads)
        self.artifact = artifact
        self.model = load_model(artifact)

    def prepare(self, xs: np.ndarray | Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Reference-form batches -> tensors sharing their memory."""
        return [torch.from_numpy(x) for x in to_artifact_inputs(xs, self.artifact)]

    def invoke(self, prepared: list[torch.Tensor]) -> list[np.ndarray]:
        with torch.no_grad():
            return [o.numpy() for o in flat_outputs(self.model(*prepared))[1]]

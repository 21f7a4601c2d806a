"""PyTorch running a saved torch.export program (.pt2): here, the PT2E-quantized reference of the int8 programs."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.model_io import flat_outputs
from pipeline.runtimes import Session, to_artifact_inputs


class TorchExportSession(Session):
    runtime = "torch"

    def __init__(self, artifact: Artifact, threads: int):
        torch.set_num_threads(threads)
        try:  # torch's own registration of the quantized_decomposed ops the program calls: 0.04 s here, where
            # importing torchao (which registers the same ops, same outputs bit for bit) took 4 s of every process
            importlib.import_module("torch.ao.quantization.fx._decomposed")
        except ImportError:
            importlib.import_module("torchao.quantization.pt2e")

        self.artifact = artifact
        self.module = torch.export.load(artifact.path).module()

    def prepare(self, xs: np.ndarray | Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Reference-form batches -> tensors sharing their memory."""
        return [torch.from_numpy(x) for x in to_artifact_inputs(xs, self.artifact)]

    def invoke(self, prepared: list[torch.Tensor]) -> list[np.ndarray]:
        with torch.no_grad():
            return [o.numpy() for o in flat_outputs(self.module(*prepared))[1]]

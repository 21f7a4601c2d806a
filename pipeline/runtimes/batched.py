"""An artifact's outputs on a whole array, in its own runtime, in the batches evaluate and debug both use."""

from __future__ import annotations

import numpy as np

from pipeline.artifacts.artifact import Artifact
from pipeline.core.progress import progress
from pipeline.runtimes import batch_size, open_session
from pipeline.training.loop import PREDICT_BATCH  # the same batches as PyTorch's own predictions


def run_artifact(artifact: Artifact, x: np.ndarray, threads: int) -> np.ndarray:
    """float32 outputs of `artifact` on `x` (reference layout), batch by batch, with a progress bar."""
    session = open_session(artifact, threads)
    batch = min(batch_size(artifact), PREDICT_BATCH)
    outs = []
    with progress(total=len(x), desc=f"evaluate {artifact.name}", unit="img") as bar:
        for i in range(0, len(x), batch):
            outs.append(session.run(x[i : i + batch]))
            bar.update(len(x[i : i + batch]))
    return np.concatenate(outs)

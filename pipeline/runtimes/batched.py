"""An artifact's outputs on a whole array, in its own runtime, in the batches evaluate and debug both use."""

from __future__ import annotations

import numpy as np

from pipeline.artifacts.artifact import Artifact
from pipeline.core.progress import progress
from pipeline.runtimes import batch_size, open_session
from pipeline.training.loop import PREDICT_BATCH  # the same batches as PyTorch's own predictions


def run_artifact_all(artifact: Artifact, xs: np.ndarray | list[np.ndarray], threads: int) -> list[np.ndarray]:
    """Every float32 output of `artifact` on its inputs (reference form; one array, or one per input), batch by
    batch, with a progress bar."""
    xs = [xs] if isinstance(xs, np.ndarray) else list(xs)
    session = open_session(artifact, threads)
    batch = min(batch_size(artifact), PREDICT_BATCH)
    n = len(xs[0])
    outs = []
    with progress(total=n, desc=f"evaluate {artifact.name}", unit="sample") as bar:
        for i in range(0, n, batch):
            outs.append(session.run_all([x[i : i + batch] for x in xs]))
            bar.update(min(batch, n - i))
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def run_artifact(artifact: Artifact, x: np.ndarray | list[np.ndarray], threads: int) -> np.ndarray:
    """The first float32 output of `artifact` on its input(s) (reference layout), batch by batch."""
    return run_artifact_all(artifact, x, threads)[0]

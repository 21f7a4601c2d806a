"""The user's own metric (`[evaluate] metric = "macro_f1.py:score"`): macro-averaged F1 of the class scores, every
class weighted alike however often it occurs, which top-1 accuracy is not."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def score(outputs: dict[str, np.ndarray] | np.ndarray, targets: np.ndarray) -> float:
    """Macro-F1 of the `scores` output (the only output of a one-output model) against the class ids."""
    scores = outputs["scores"] if isinstance(outputs, dict) else outputs
    return float(f1_score(targets, scores.argmax(1), average="macro"))

"""Latency statistics, the same for host and device measurements."""

from __future__ import annotations

import numpy as np


def latency_summary(ms: list[float] | np.ndarray, trim: float = 0.1) -> dict:
    """p50/p90/p99, mean, std, coefficient of variation and a trimmed mean (dropping `trim` at each end), in ms."""
    a = np.sort(np.asarray(ms, dtype=np.float64))
    if a.size == 0:
        raise ValueError("no latency samples")
    k = int(len(a) * trim)
    trimmed = a[k : len(a) - k] if len(a) - 2 * k > 0 else a
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return {
        "runs": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "mean": mean,
        "std": std,
        "cv": std / mean if mean > 0 else 0.0,
        "trimmed_mean": float(trimmed.mean()),
        "min": float(a[0]),
        "max": float(a[-1]),
    }

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


def lower_median(values: list[float] | np.ndarray) -> float:
    """The median of a sample, the lower middle value when the count is even: always one of the measured values."""
    a = np.sort(np.asarray(values, dtype=np.float64))
    if a.size == 0:
        raise ValueError("no values")
    return float(a[(a.size - 1) // 2])


def median_round(values: list[float] | np.ndarray) -> int:
    """The index of the round whose value is `lower_median(values)`."""
    order = np.argsort(np.asarray(values, dtype=np.float64), kind="stable")
    return int(order[(len(order) - 1) // 2])


def speedup_interval(baseline: list[float] | np.ndarray, candidate: list[float] | np.ndarray,
                     confidence: float = 0.95, resamples: int = 4000, seed: int = 0) -> dict:
    """Speed-up of `candidate` over `baseline` from per-round p50s measured in the same rounds, with a bootstrap
    confidence interval.

    The ratio is lower_median(baseline) / lower_median(candidate). Rounds are resampled in pairs (both artifacts ran
    back to back in a round, under the same load), with a seeded generator so that a report rebuilds identically.

    Example::

        >>> r = speedup_interval([2.0, 2.1, 1.9, 2.0], [1.0, 1.05, 0.95, 1.0])
        >>> r["ratio"], r["ci_low"] <= 2.0 <= r["ci_high"]
        (2.0, True)
    """
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    if b.shape != c.shape or b.size == 0:
        raise ValueError(f"speed-up needs the same non-zero number of rounds ({b.size} and {c.size})")
    idx = np.random.default_rng(seed).integers(0, b.size, size=(resamples, b.size))
    mid = (b.size - 1) // 2
    ratios = np.sort(b[idx], axis=1)[:, mid] / np.sort(c[idx], axis=1)[:, mid]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    ratio = lower_median(b) / lower_median(c)
    return {"ratio": ratio, "ci_low": float(low), "ci_high": float(high), "confidence": confidence,
            "rel_width": float((high - low) / ratio)}

"""How far a runtime's tensor is from the reference's: max abs error, relative error, cosine similarity, SQNR (dB)."""

from __future__ import annotations

import math

import numpy as np


def compare(got: np.ndarray, ref: np.ndarray) -> dict:
    """Metrics of `got` against `ref` (same shape), over every element of every sample.

    SQNR is 10 log10(signal power / error power): 6 dB per bit, so about 40-50 dB for a good int8 tensor's ideal and
    well over 100 dB for fp32 rounding; an exact match is reported as inf.
    """
    g, r = got.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    err = g - r
    signal, noise = float(np.dot(r, r)), float(np.dot(err, err))
    norms = math.sqrt(float(np.dot(g, g)) * signal)
    return {
        "shape": list(ref.shape),
        "max_abs_error": float(np.abs(err).max()) if err.size else 0.0,
        "relative_error": math.sqrt(noise / signal) if signal > 0 else (0.0 if noise == 0 else math.inf),
        "cosine": float(np.dot(g, r)) / norms if norms > 0 else (1.0 if noise == 0 else 0.0),
        "sqnr_db": (math.inf if noise == 0 else 10 * math.log10(signal / noise)) if signal > 0 else
                   (math.inf if noise == 0 else -math.inf),
    }

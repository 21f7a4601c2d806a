"""Numeric fidelity of every output of an artifact against a reference model's: SQNR (dB), cosine similarity, max
absolute and relative error, and top-1 agreement where an output holds class scores. Needs no labels, so it validates
embedding models, detectors and imported files as well as classifiers.

Example::

    >>> import numpy as np
    >>> ref = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    >>> m = output_fidelity(ref + 0.01, ref)
    >>> round(m["sqnr_db"], 1), m["top1_agreement"]
    (45.7, 1.0)
"""

from __future__ import annotations

import numpy as np

from pipeline.layers.metrics import compare


def is_class_scores(ref: np.ndarray) -> bool:
    """An output of [batch, classes] (or [batch, classes, 1, 1], as convolutional heads give) with at least two
    classes: top-1 agreement means something for it."""
    sizes = [d for d in ref.shape[1:] if d != 1]
    return ref.ndim >= 2 and len(sizes) == 1 and sizes[0] >= 2


def output_fidelity(got: np.ndarray, ref: np.ndarray) -> dict:
    """Fidelity of one output (all samples) against the reference's: SQNR, cosine, max abs, relative error, mean abs
    error, the reference's largest magnitude, and top-1 agreement for class scores."""
    if got.shape != ref.shape:
        raise ValueError(f"output of shape {list(got.shape)} against a reference of shape {list(ref.shape)}")
    m = compare(got, ref)
    m.pop("shape")
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    m["mean_abs_error"] = float(diff.mean()) if diff.size else 0.0
    m["reference_max_abs"] = float(np.abs(ref).max()) if ref.size else 0.0
    if is_class_scores(ref):
        flat_got, flat_ref = got.reshape(len(got), -1), ref.reshape(len(ref), -1)
        m["top1_agreement"] = float((flat_got.argmax(1) == flat_ref.argmax(1)).mean())
    return m


def fidelity(got: list[np.ndarray], ref: list[np.ndarray], names: list[str]) -> dict[str, dict]:
    """{output name: output_fidelity} for every output."""
    if len(got) != len(ref):
        raise ValueError(f"{len(got)} outputs against a reference with {len(ref)}")
    return {name: output_fidelity(g, r) for name, g, r in zip(names, got, ref, strict=True)}


def differs_per_input(outputs: list[np.ndarray]) -> bool:
    """True when at least one output changes from sample to sample (else every parity check passes trivially)."""
    return any(len(o) > 1 and float(np.abs(o - o[:1]).max()) > 1e-6 * max(1.0, float(np.abs(o).max()))
               for o in outputs)

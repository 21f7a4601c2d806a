"""The bundle's sample pictures and each artifact's recorded outputs on them, which `verify` reproduces.

Inputs are the PNG files themselves, read back and put through the reference preprocessing (pipeline/preprocess.py),
so release and verify feed each runtime exactly what an app following the reference would.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.artifact import Artifact
from pipeline.preprocess import InputSpec, preprocess
from pipeline.runtimes import open_session

COUNT = 16
OUTPUTS_DIR = "samples/outputs"

# Tolerances for reproducing recorded outputs. Same runtime, same machine gives identical bits; another CPU may pick
# other SIMD kernels, so fp32/fp16 outputs may differ by float rounding: |got - want| <= 1e-5 * max(1, max|want|)
# (relative to the logits' scale). Dequantized int8 outputs may differ by one quantization step: scale * 1.001.
FLOAT_RTOL = 1e-5


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 HxW (grey) or HxWx3 (RGB) image as PNG bytes; PIL writes no timestamp, so the bytes are stable."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_pictures(root: Path, images: np.ndarray, labels: np.ndarray | None) -> list[dict]:
    """samples/NNNN.png for each image; returns the metadata's `samples` entries."""
    (root / "samples").mkdir(parents=True, exist_ok=True)
    entries = []
    for i, image in enumerate(images):
        rel = f"samples/{i:04d}.png"
        (root / rel).write_bytes(png_bytes(image))
        entries.append({"file": rel, "label": None if labels is None else int(labels[i])})
    return entries


def inputs(root: Path, samples: list[dict], spec: InputSpec) -> np.ndarray:
    """float32 N x C x H x W: each sample PNG through the reference preprocessing."""
    return np.concatenate([preprocess(np.asarray(Image.open(root / s["file"])), spec, layout="NCHW")
                           for s in samples])


def outputs(artifact: Artifact, x: np.ndarray) -> np.ndarray:
    """float32 N x classes: `artifact` run in its own runtime (one thread), one sample at a time."""
    session = open_session(artifact, threads=1)
    return np.concatenate([session.run(x[i : i + 1]) for i in range(len(x))]).astype(np.float32)


def allowed_difference(want: np.ndarray, output_quantization: dict | None) -> float:
    """The largest |got - want| accepted when reproducing `want` (see the tolerances above)."""
    if output_quantization:
        return float(output_quantization["scale"]) * 1.001
    return FLOAT_RTOL * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype="<f4"), allow_pickle=False)
    return buf.getvalue()

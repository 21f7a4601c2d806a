"""Runtime adapters: load an artifact, run batches. One small interface, one file per runtime.

Every session takes float32 NCHW input (the reference preprocessing's output) and returns float32 logits; the
adapter converts to the artifact's layout and integer input type from the artifact's metadata, never from names.
`run(x)` is three steps that a benchmark times apart: `prepare` (layout, quantization, the runtime's input object),
`invoke` (the model alone: what the runtime itself costs) and `to_logits` (output dequantization).

For example (`artifact` from a run's manifest, `x` a float32 NCHW batch)::

    session = open_session(artifact)
    prepared = session.prepare(x)        # an app pays this once per frame
    raw = session.invoke(prepared)       # the model's own latency
    logits = session.to_logits(raw)      # the same as session.run(x)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.preprocess import quantize_int8

RUNTIME_OF_FORMAT = {"torch": "torch", "pt2": "torch", "onnx": "onnxruntime", "tflite": "litert", "pte": "executorch"}
# Runtimes that live in torch's process: torch's or ExecuTorch's process-wide thread pools, `import torch` to start
TORCH_LINKED = ("torch", "executorch")


def to_artifact_input(x: np.ndarray, artifact: Artifact) -> np.ndarray:
    """Reference-layout float32 input -> what the artifact's input tensor expects (layout, dtype)."""
    if artifact.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    if artifact.input_dtype == "int8":
        q = artifact.input_quantization or {}
        x = quantize_int8(x, q["scale"], q["zero_point"])  # keeps the transposed strides
        return np.ascontiguousarray(x)  # else the runtime makes it contiguous inside invoke, in the timed region
    return np.ascontiguousarray(x, dtype=np.float32)


def from_artifact_output(y: np.ndarray, artifact: Artifact) -> np.ndarray:
    """The artifact's raw output -> float32 (dequantized with the artifact's output scale and zero point)."""
    if artifact.output_quantization:
        q = artifact.output_quantization
        return ((y.astype(np.float32) - q["zero_point"]) * np.float32(q["scale"])).astype(np.float32)
    return y.astype(np.float32, copy=False)


class Session:
    """The adapter contract; a runtime's file subclasses it and defines `invoke` (and `prepare` if its input is not
    a numpy array)."""

    runtime: str
    artifact: Artifact

    def prepare(self, x: np.ndarray) -> Any:
        """float32 NCHW batch (of the artifact's batch size) -> the input `invoke` takes, in the artifact's layout and
        type."""
        return to_artifact_input(x, self.artifact)

    def invoke(self, prepared: Any) -> np.ndarray:
        """The model alone on a prepared input -> the artifact's raw output (int8 for integer outputs)."""
        raise NotImplementedError

    def to_logits(self, raw: np.ndarray) -> np.ndarray:
        """Raw output -> float32 logits."""
        return from_artifact_output(raw, self.artifact)

    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 NCHW batch -> float32 logits."""
        return self.to_logits(self.invoke(self.prepare(x)))


def session_class(fmt: str) -> type[Session]:
    """The adapter class for an artifact format; importing it loads the runtime library (slow for torch)."""
    if fmt == "torch":
        from pipeline.runtimes.torch_eager import TorchSession

        return TorchSession
    if fmt == "pt2":
        from pipeline.runtimes.torch_export import TorchExportSession

        return TorchExportSession
    if fmt == "onnx":
        from pipeline.runtimes.onnxruntime_session import OnnxRuntimeSession

        return OnnxRuntimeSession
    if fmt == "tflite":
        from pipeline.runtimes.litert import LiteRTSession

        return LiteRTSession
    if fmt == "pte":
        from pipeline.runtimes.executorch_session import ExecuTorchSession

        return ExecuTorchSession
    raise ValueError(f"no runtime for format {fmt!r}")


def open_session(artifact: Artifact, threads: int = 1) -> Session:
    """Load `artifact` in its own runtime."""
    return session_class(artifact.format)(artifact, threads)


def batch_size(artifact: Artifact) -> int:
    """The largest batch the artifact accepts (programs exported with a dynamic batch record it in extra)."""
    return int(artifact.extra.get("max_batch", artifact.input_shape[0]))

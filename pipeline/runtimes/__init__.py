"""Runtime adapters: load an artifact, run batches. One small interface, one file per runtime.

Every session takes the model's inputs in reference form (one array per input, batch first: float32 NCHW for a
picture, the float or integer arrays of other data) and returns every output as float32, in the order of the
artifact's output specs (pipeline/artifacts/tensors.py). The adapter converts each tensor to the file's layout and
integer type from the artifact's metadata, never from names. `run_all(xs)` is three steps that a benchmark times
apart: `prepare` (layout, quantization, the runtime's input objects), `invoke` (the model alone: what the runtime
itself costs) and `to_outputs` (output dequantization). `run(x)` is the one-input, first-output shorthand.

For example (`artifact` from a run's manifest, `xs` a list of batches, one per input)::

    session = open_session(artifact)
    prepared = session.prepare(xs)       # an app pays this once per frame
    raw = session.invoke(prepared)       # the model's own latency
    outputs = session.to_outputs(raw)    # the same as session.run_all(xs)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.preprocess import quantize_int8
from pipeline.artifacts.tensors import CHANNELS_LAST, TensorSpec, inputs_of, outputs_of

RUNTIME_OF_FORMAT = {"torch": "torch", "pt2": "torch", "onnx": "onnxruntime", "tflite": "litert", "pte": "executorch"}
# Runtimes that live in torch's process: torch's or ExecuTorch's process-wide thread pools, `import torch` to start
TORCH_LINKED = ("torch", "executorch")


def to_tensor_input(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """One reference-form input -> what the file's input tensor expects (layout, dtype, int8 quantization)."""
    if spec.layout == "NHWC" and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    if spec.dtype == "int8" and spec.quantization:
        q = spec.quantization
        x = quantize_int8(x, q["scale"], q["zero_point"])  # keeps the transposed strides
        return np.ascontiguousarray(x)  # else the runtime makes it contiguous inside invoke, in the timed region
    if spec.dtype in ("float32", "int8"):
        return np.ascontiguousarray(x, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.dtype(spec.dtype))  # token ids, masks: the file's integer type


def to_artifact_inputs(xs: np.ndarray | Sequence[np.ndarray], artifact: Artifact) -> list[np.ndarray]:
    """Reference-form inputs (one array, or one per input) -> the arrays the artifact's input tensors take."""
    xs = [xs] if isinstance(xs, np.ndarray) else list(xs)
    specs = inputs_of(artifact)
    if len(xs) != len(specs):
        raise ValueError(f"{artifact.name} takes {len(specs)} inputs ({', '.join(s.name for s in specs)}), "
                         f"given {len(xs)}")
    return [to_tensor_input(x, spec) for x, spec in zip(xs, specs, strict=True)]


def to_artifact_input(x: np.ndarray, artifact: Artifact) -> np.ndarray:
    """Reference-layout input of a one-input artifact -> what its input tensor expects (layout, dtype)."""
    return to_tensor_input(x, inputs_of(artifact)[0])


def dequantized(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """An integer output with a scale and zero point -> float32; any other output as the file returns it."""
    if spec.quantization and np.issubdtype(y.dtype, np.integer):
        q = spec.quantization
        return ((y.astype(np.float32) - q["zero_point"]) * np.float32(q["scale"])).astype(np.float32)
    return y


def from_tensor_output(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """One raw output -> float32 in reference form (dequantized; an NHWC image output back to NCHW)."""
    y = dequantized(y, spec).astype(np.float32, copy=False)
    if spec.layout in CHANNELS_LAST.values() and y.ndim == len(spec.layout):  # onnx2tf moved the channels last: back
        return np.moveaxis(y, -1, 1)
    return y


def from_artifact_outputs(ys: Sequence[np.ndarray], artifact: Artifact) -> list[np.ndarray]:
    specs = outputs_of(artifact)
    return [from_tensor_output(y, spec) for y, spec in zip(ys, specs, strict=True)]


def from_artifact_output(y: np.ndarray, artifact: Artifact) -> np.ndarray:
    """The first raw output -> float32 (dequantized with the artifact's output scale and zero point)."""
    return from_tensor_output(y, outputs_of(artifact)[0])


class Session:
    """The adapter contract; a runtime's file subclasses it and defines `invoke` (and `prepare` if its inputs are not
    numpy arrays)."""

    runtime: str
    artifact: Artifact

    def prepare(self, xs: np.ndarray | Sequence[np.ndarray]) -> Any:
        """Reference-form batches (of the artifact's batch size; one array, or one per input) -> what `invoke`
        takes, in the artifact's layouts and types."""
        return to_artifact_inputs(xs, self.artifact)

    def invoke(self, prepared: Any) -> list[np.ndarray]:
        """The model alone on prepared inputs -> the artifact's raw outputs, in its output order (int8 for integer
        outputs)."""
        raise NotImplementedError

    def to_outputs(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        """Raw outputs -> float32 outputs in reference form."""
        return from_artifact_outputs(raw, self.artifact)

    def to_logits(self, raw: list[np.ndarray]) -> np.ndarray:
        """Raw outputs -> the first output as float32 (class scores for a classifier)."""
        return from_artifact_output(raw[0], self.artifact)

    def run_all(self, xs: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        """Reference-form inputs -> every output, float32."""
        return self.to_outputs(self.invoke(self.prepare(xs)))

    def run(self, x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Reference-form input(s) -> the first output, float32."""
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

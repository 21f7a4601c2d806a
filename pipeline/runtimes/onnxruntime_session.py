"""ONNX Runtime on the CPU."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from pipeline.artifacts.artifact import Artifact
from pipeline.runtimes import Session, to_artifact_inputs


class OnnxRuntimeSession(Session):
    runtime = "onnxruntime"

    def __init__(self, artifact: Artifact, threads: int, optimize: bool = True):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if not optimize:  # int8 Q/DQ graphs: ORT's fusions change results on CPUs without VNNI (STACK.md)
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.artifact = artifact
        self.session = ort.InferenceSession(artifact.path, opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def prepare(self, xs: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Reference-form batches -> ONNX Runtime's feed, by the file's input names in order (a contiguous array of
        the right type is used without a copy)."""
        return dict(zip(self.input_names, to_artifact_inputs(xs, self.artifact), strict=True))

    def invoke(self, prepared: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, prepared)

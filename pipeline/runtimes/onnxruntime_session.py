"""ONNX Runtime on the CPU."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from pipeline.artifacts.artifact import Artifact
from pipeline.runtimes import Session, to_artifact_input


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
        self.input_name = self.session.get_inputs()[0].name

    def prepare(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """float32 NCHW batch -> ONNX Runtime's feed (a contiguous array of the right type is used without a copy)."""
        return {self.input_name: to_artifact_input(x, self.artifact)}

    def invoke(self, prepared: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, prepared)[0]

"""LiteRT (ai-edge-litert, the successor of tflite-runtime) with its default XNNPACK CPU delegate."""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from pipeline.artifact import Artifact
from pipeline.runtimes import from_artifact_output, to_artifact_input


class LiteRTSession:
    runtime = "litert"

    def __init__(self, artifact: Artifact, threads: int):
        self.artifact = artifact
        self.interpreter = Interpreter(model_path=artifact.path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]

    def run(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input_index, to_artifact_input(x, self.artifact))
        self.interpreter.invoke()
        return from_artifact_output(self.interpreter.get_tensor(self.output_index), self.artifact)

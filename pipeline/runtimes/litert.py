"""LiteRT (ai-edge-litert, the successor of tflite-runtime) with its default XNNPACK CPU delegate."""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from pipeline.artifacts.artifact import Artifact
from pipeline.runtimes import Session


class LiteRTSession(Session):
    runtime = "litert"

    def __init__(self, artifact: Artifact, threads: int):
        self.artifact = artifact
        self.interpreter = Interpreter(model_path=artifact.path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]

    def invoke(self, prepared: np.ndarray) -> np.ndarray:
        # set_tensor copies into the interpreter's own input buffer, as an app's input buffer does; get_tensor copies
        # the (small) output, so no view into the interpreter outlives the next invoke
        self.interpreter.set_tensor(self.input_index, prepared)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)

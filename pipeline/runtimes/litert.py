"""LiteRT (ai-edge-litert, the successor of tflite-runtime) with its default XNNPACK CPU delegate."""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.tensors import inputs_of, outputs_of
from pipeline.runtimes import Session
from pipeline.runtimes.tflite_file import signature_indices


class LiteRTSession(Session):
    runtime = "litert"

    def __init__(self, artifact: Artifact, threads: int):
        self.artifact = artifact
        self.interpreter = Interpreter(model_path=artifact.path, num_threads=threads)
        self.interpreter.allocate_tensors()
        recorded = artifact.extra.get("tflite_tensor_indices")  # decided when the file was made
        named_in, named_out = signature_indices(self.interpreter)
        self.input_indices = tensor_order(self.interpreter.get_input_details(), named_in, inputs_of(artifact), artifact)
        self.output_indices = tensor_order(self.interpreter.get_output_details(), named_out, outputs_of(artifact),
                                           artifact)
        if recorded:
            self.input_indices, self.output_indices = list(recorded["inputs"]), list(recorded["outputs"])

    def invoke(self, prepared: list[np.ndarray]) -> list[np.ndarray]:
        # set_tensor copies into the interpreter's own input buffer, as an app's input buffer does; get_tensor copies
        # the (small) output, so no view into the interpreter outlives the next invoke
        for index, x in zip(self.input_indices, prepared, strict=True):
            self.interpreter.set_tensor(index, x)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(index) for index in self.output_indices]


def tensor_order(details: list[dict], named: dict[str, int], specs: tuple, artifact: Artifact) -> list[int]:
    """The interpreter's tensor indices in the order of the artifact's specs: by name through the file's signature
    (onnx2tf sorts outputs by name), else in the file's own order when the counts agree."""
    by_name = {**{d["name"]: d["index"] for d in details}, **named}
    names = [s.name for s in specs]
    if all(n in by_name for n in names):
        return [by_name[n] for n in names]
    if len(details) != len(specs):
        raise ValueError(f"{artifact.name}: the file has {len(details)} tensors where its metadata lists "
                         f"{len(specs)}")
    return [d["index"] for d in details]

"""ExecuTorch's Python runtime (the same C++ runtime phones use) running a .pte program."""

from __future__ import annotations

import numpy as np
import torch
from executorch.extension.pybindings import portable_lib
from executorch.runtime import Runtime

from pipeline.artifact import Artifact
from pipeline.runtimes import from_artifact_output, to_artifact_input


class ExecuTorchSession:
    runtime = "executorch"

    def __init__(self, artifact: Artifact, threads: int):
        # XNNPACK runs on ExecuTorch's own thread pool, sized to the CPU count unless reset.
        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)
        self.artifact = artifact
        self.program = Runtime.get().load_program(artifact.path)
        self.method = self.program.load_method("forward")

    def run(self, x: np.ndarray) -> np.ndarray:
        out = self.method.execute([torch.from_numpy(to_artifact_input(x, self.artifact))])
        return from_artifact_output(out[0].numpy(), self.artifact)

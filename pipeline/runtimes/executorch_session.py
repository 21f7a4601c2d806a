"""ExecuTorch's Python runtime (the same C++ runtime phones use) running a .pte program."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch  # first: the runtime extension links against libtorch
from executorch.extension.pybindings import _C as portable_lib

from pipeline.artifacts.artifact import Artifact
from pipeline.runtimes import Session, to_artifact_inputs


def set_threads(threads: int) -> None:
    """Size the thread pool XNNPACK runs on: ExecuTorch's own, sized to the CPU count unless reset."""
    if portable_lib._threadpool_get_thread_count() != threads:
        portable_lib._unsafe_reset_threadpool(threads)


class ExecuTorchSession(Session):
    runtime = "executorch"

    def __init__(self, artifact: Artifact, threads: int):
        set_threads(threads)
        self.artifact = artifact
        # The extension module itself: executorch.runtime and pybindings.portable_lib wrap these same calls but import
        # all of executorch.exir first, 3 of the 4.5 s a fresh benchmark process spent starting up.
        self.program = portable_lib._load_program(
            str(artifact.path), enable_etdump=False, debug_buffer_size=0,
            program_verification=portable_lib.Verification.InternalConsistency, data_path=None)
        self.method = self.program.load_method("forward")

    def prepare(self, xs: np.ndarray | Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Reference-form batches -> the method's inputs; torch.from_numpy shares the arrays' memory."""
        return [torch.from_numpy(x) for x in to_artifact_inputs(xs, self.artifact)]

    def invoke(self, prepared: list[torch.Tensor]) -> list[np.ndarray]:
        # The bindings point the program's inputs at the tensors' memory (no copy) and clone the outputs out of the
        # planned arena (about 2 us for 10 logits here, against the private no-clone call); .numpy() shares them.
        return [o.numpy() for o in self.method(prepared)]

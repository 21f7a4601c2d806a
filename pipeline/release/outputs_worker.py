"""Run one artifact on the sample inputs in a child process and save its outputs: the side of
`samples.outputs` that loads a model file.

    python -m pipeline.release.outputs_worker '{"artifact": {...}, "input": "x.npy", "output": "y.npy"}'

A model file from outside may make its runtime abort the whole process (ExecuTorch's bindings call `terminate` on
some damaged programs), so the file is only ever loaded here, never in the process that verifies the bundle.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(args: dict) -> int:
    """Write the artifact's float32 outputs for the inputs (one sample at a time, one thread); 1 on a failure."""
    from pipeline.artifacts.artifact import Artifact
    from pipeline.runtimes import open_session

    artifact = Artifact.from_dict(args["artifact"])
    x = np.load(args["input"], allow_pickle=False)
    try:
        session = open_session(artifact, threads=1)
        y = np.concatenate([session.run(x[i : i + 1]) for i in range(len(x))]).astype(np.float32)
    except Exception as exc:  # the runtime's own words, as the one line the parent reports
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{type(exc).__name__}: {first}"[:300], file=sys.stderr)
        return 1
    np.save(args["output"], y, allow_pickle=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))

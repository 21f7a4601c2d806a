"""Run one artifact on the sample inputs in a child process and save its outputs: the side of
`samples.outputs` that loads a model file.

    python -m pipeline.release.outputs_worker '{"artifact": {...}, "inputs": ["x0.npy", ...], "output": "y.npz"}'

A model file from outside may make its runtime abort the whole process (ExecuTorch's bindings call `terminate` on
some damaged programs), so the file is only ever loaded here, never in the process that verifies the bundle.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(args: dict) -> int:
    """Write every float32 output of the artifact for the inputs (one array per input, one sample at a time, one
    thread) as y.npz (arr_0, arr_1 ... in the model's output order); 1 on a failure."""
    from pipeline.artifacts.artifact import Artifact
    from pipeline.runtimes import open_session

    artifact = Artifact.from_dict(args["artifact"])
    xs = [np.load(p, allow_pickle=False) for p in args["inputs"]]
    try:
        session = open_session(artifact, threads=1)
        rows = [session.run_all([x[i : i + 1] for x in xs]) for i in range(len(xs[0]))]
        ys = [np.concatenate([r[k] for r in rows]).astype(np.float32) for k in range(len(rows[0]))]
    except Exception as exc:  # the runtime's own words, as the one line the parent reports
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{type(exc).__name__}: {first}"[:300], file=sys.stderr)
        return 1
    np.savez(args["output"], *ys)
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))

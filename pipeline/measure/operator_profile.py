"""One artifact's per-operator profile as a record: what `phone-pipeline profile` shows and the run report quotes.

A .pte runs in ExecuTorch with ETDump on (measure/executorch_ops.py); a .tflite gets LiteRT's op table without
times (measure/litert_ops.py). The record carries the artifact's name, path and sha256, so a reader can tell a page
of this very file from one of an earlier file of the same name. Writing it as a page: measure/profile_page.py.

For example::

    rec = record(art, x, runs=10, threads=1)   # x: the reference-layout input (numpy), one picture
    rec["profile"]["events"][0]                # {"name": "Convolution (NHWC, QC8) IGEMM #1", "share": ..., ...}
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from pipeline.artifacts.artifact import Artifact
from pipeline.recipe.config import Config

SCHEMA = "phone-pipeline/profile/1"
FORMATS = ("pte", "tflite")


def record(art: Artifact, x: np.ndarray, runs: int, threads: int) -> dict:
    """Profile `art` (a .pte or .tflite) on reference-layout input `x`; the page record (schema, artifact, profile,
    seconds). Exceptions of the runtimes pass through: the caller says what failed."""
    from pipeline.runtimes import to_artifact_input

    start = time.perf_counter()
    if art.format == "pte":
        from pipeline.measure.executorch_ops import profile_program

        torch.set_num_threads(threads)
        result = profile_program(Path(art.path), torch.from_numpy(to_artifact_input(x, art)), runs, threads)
    elif art.format == "tflite":
        from pipeline.measure.litert_ops import op_table

        result = op_table(Path(art.path))
    else:
        raise ValueError(f"a {art.format} artifact has no per-operator profile here ({', '.join(FORMATS)} have)")
    return {"schema": SCHEMA, "artifact": identity(art), "profile": result,
            "seconds": round(time.perf_counter() - start, 2)}


def evaluation_input(recipe: Config, art: Artifact) -> np.ndarray | None:
    """What `record` runs `art` on: one batch of the recipe's evaluation pictures in reference layout for a .pte;
    None for a .tflite, whose op table reads the file only."""
    from pipeline import data
    from pipeline.runtimes import batch_size

    if art.format != "pte":
        return None
    return data.to_tensor(data.eval_split(recipe, batch_size(art)).images, data.input_spec(recipe))


def failed(art: Artifact, why: str) -> dict:
    """The record of a profile that could not be made, saying why (the report quotes it instead of numbers)."""
    return {"schema": SCHEMA, "artifact": identity(art), "profile": None, "error": why}


def identity(art: Artifact) -> dict:
    return {k: getattr(art, k) for k in ("name", "format", "precision", "path", "sha256")}

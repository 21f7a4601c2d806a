"""The bundle's sample inputs and each artifact's recorded outputs on them (one file per output), which `verify`
reproduces.

A picture model's inputs are PNG files (samples/NNNN.png); any other model's are .npy files, one per input
(samples/inputs/K.npy, samples first, in the dtype the model takes). Both are read back from the bundle's files
(pictures through the reference preprocessing, pipeline/artifacts/preprocess.py), so release and verify feed each
runtime exactly what an app following the reference would.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.preprocess import InputSpec, preprocess
from pipeline.core import work_folders
from pipeline.core.errors import ToolError, shown
from pipeline.core.proc import exit_description, last_line, python_module, run

COUNT = 16
OUTPUTS_DIR = "samples/outputs"

# Tolerances for reproducing recorded outputs. Same runtime, same machine gives identical bits; another CPU may pick
# other SIMD kernels, so fp32/fp16 outputs may differ by float rounding: |got - want| <= 1e-5 * max(1, max|want|)
# (relative to the logits' scale). Dequantized int8 outputs may differ by one quantization step: scale * 1.001.
FLOAT_RTOL = 1e-5

# A sample picture is model-sized (tens to hundreds of pixels a side, the input at most 1024x1024, see
# release/schema.py); a bigger one is refused from its header, before PIL decodes it. PIL's own bomb check
# (Image.MAX_IMAGE_PIXELS, about 89 Mpixels) is kept as a second line, its warning turned into an error.
MAX_SAMPLE_PIXELS = 2048 * 2048


class SampleError(Exception):
    """A sample picture or recorded-outputs file of a bundle that cannot be used; the message names the file."""


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 HxW (grey) or HxWx3 (RGB) image as PNG bytes; PIL writes no timestamp, so the bytes are stable."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_pictures(root: Path, images: np.ndarray, labels: np.ndarray | None) -> list[dict]:
    """samples/NNNN.png for each image; returns the metadata's `samples` entries."""
    (root / "samples").mkdir(parents=True, exist_ok=True)
    entries = []
    for i, image in enumerate(images):
        rel = f"samples/{i:04d}.png"
        (root / rel).write_bytes(png_bytes(image))
        entries.append({"file": rel, "label": None if labels is None else int(labels[i])})
    return entries


def read_picture(path: Path, rel: str) -> np.ndarray:
    """A sample picture's pixels; SampleError (naming `rel`) for a file PIL cannot read or one too big to decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_SAMPLE_PIXELS:
                    raise SampleError(f"{shown(rel)}: {width}x{height} pixels, more than the {MAX_SAMPLE_PIXELS:,} a "
                                      "sample picture may have; refused before decoding")
                return np.asarray(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # PIL's check, at open
        raise SampleError(f"{shown(rel)}: refused before decoding: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise SampleError(f"{shown(rel)}: unreadable sample picture ({exc})") from None


def inputs(root: Path, samples: list[dict], spec: InputSpec) -> np.ndarray:
    """float32 N x C x H x W: each sample PNG through the reference preprocessing, decoded one at a time into the
    one array (for a bundle from outside, its size was bounded by the metadata schema before this is called)."""
    x = np.empty((len(samples), spec.channels, spec.height, spec.width), dtype=np.float32)
    for i, s in enumerate(samples):
        x[i] = preprocess(read_picture(root / s["file"], s["file"]), spec, layout="NCHW")[0]
    return x


MAX_OUTPUTS_PER_SAMPLE = 1 << 22  # a detector's boxes or a segmenter's mask, not a memory bomb
INPUTS_DIR = "samples/inputs"
# The dtypes a sample input file may hold: what the runtimes feed (pipeline/runtimes/__init__.py to_tensor_input)
INPUT_DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")


def write_arrays(root: Path, arrays: list[np.ndarray], names: list[str]) -> list[dict]:
    """samples/inputs/K.npy, one file per model input (samples first, the model's dtype); returns the metadata's
    `sample_inputs` entries."""
    (root / INPUTS_DIR).mkdir(parents=True, exist_ok=True)
    entries = []
    for k, (array, name) in enumerate(zip(arrays, names, strict=True)):
        rel = f"{INPUTS_DIR}/{k}.npy"
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        (root / rel).write_bytes(buf.getvalue())
        entries.append({"name": name, "file": rel, "shape": list(array.shape[1:]), "dtype": str(array.dtype)})
    return entries


def _npy_header(path: Path, rel: str, what: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    fmt = np.lib.format
    try:
        with path.open("rb") as f:
            version = fmt.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise SampleError(f"{shown(rel)}: .npy format {version[0]}.{version[1]}; expected 1.0 or 2.0")
            header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            declared, fortran, dtype = header(f)
            return declared, fortran, dtype, path.stat().st_size - f.tell()
    except (OSError, ValueError) as exc:
        raise SampleError(f"{shown(rel)}: unreadable {what} ({exc})") from None


def read_array(path: Path, rel: str, rows: int, dtype: str, shape: list[int] | None = None,
               what: str = "recorded outputs") -> np.ndarray:
    """A .npy of `rows` samples of `dtype` (and, if given, per-sample `shape`), its header checked before anything
    is allocated: a file declaring 10^12 rows is refused from its first bytes."""
    declared, fortran, got_dtype, data_bytes = _npy_header(path, rel, what)
    per_sample = int(np.prod(declared[1:], dtype=np.int64)) if len(declared) > 1 else 0
    want = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
    if (len(declared) < 2 or declared[0] != rows or not 0 < per_sample <= MAX_OUTPUTS_PER_SAMPLE
            or got_dtype != want or fortran or (shape is not None and list(declared[1:]) != list(shape))):
        per = "" if shape is None else f" x {list(shape)}"
        raise SampleError(f"{shown(rel)}: declares {got_dtype} {list(declared)}{' (Fortran order)' if fortran else ''}"
                          f"; expected {dtype} with {rows} rows{per} (one row per sample)")
    if data_bytes != rows * per_sample * want.itemsize:
        raise SampleError(f"{shown(rel)}: {data_bytes:,} data bytes, the header declares "
                          f"{rows * per_sample * want.itemsize:,}")
    return np.load(path, allow_pickle=False)


def read_outputs(path: Path, rel: str, shape: tuple[int, ...]) -> np.ndarray:
    """Recorded outputs of one output tensor (float32, one row per sample, any bounded per-sample shape) from a .npy
    whose header is checked first; `shape` is (samples, ...) and only its first entry is binding."""
    return read_array(path, rel, shape[0], "float32")


RUN_TIMEOUT_S = 600


class ArtifactRunError(Exception):
    """The artifact's runtime failed or died on it; the message is the child's exit and its last words."""


def outputs(artifact: Artifact, xs: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """Every output of `artifact` as float32, samples first, in the model's output order: the artifact run in its own
    runtime (one thread) on `xs` (reference-form inputs, one array per input), one sample at a time, in a child
    process (pipeline/release/outputs_worker.py), so a runtime that aborts on a bad file cannot take the caller with it.

    Raises ArtifactRunError when the runtime cannot run the file.
    """
    xs = [xs] if isinstance(xs, np.ndarray) else list(xs)
    with work_folders.temporary("pipeline-outputs.") as tmp:
        paths = [str(tmp / f"x{k}.npy") for k in range(len(xs))]
        for path, x in zip(paths, xs, strict=True):
            np.save(path, np.ascontiguousarray(x), allow_pickle=False)
        y_path = tmp / "y.npz"
        args = {"artifact": artifact.to_dict(), "inputs": paths, "output": str(y_path)}
        try:
            proc = run(python_module("pipeline.release.outputs_worker", json.dumps(args)),
                       what=f"{artifact.format} runtime", timeout=RUN_TIMEOUT_S, check=False)
        except ToolError as exc:  # timed out
            raise ArtifactRunError(str(exc)) from None
        if proc.returncode != 0:
            raise ArtifactRunError(f"{exit_description(proc.returncode)}: {last_line(proc.stderr)}")
        with np.load(y_path, allow_pickle=False) as ys:
            return [ys[f"arr_{k}"] for k in range(len(ys.files))]


def allowed_difference(want: np.ndarray, output_quantization: dict | None) -> float:
    """The largest |got - want| accepted when reproducing `want` (see the tolerances above)."""
    if output_quantization:
        return float(output_quantization["scale"]) * 1.001
    return FLOAT_RTOL * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype="<f4"), allow_pickle=False)
    return buf.getvalue()

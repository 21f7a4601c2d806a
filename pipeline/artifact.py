"""An artifact is a file plus its metadata; everything downstream reads the metadata, never the file name."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

TOOL_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxscript", "onnx2tf", "tensorflow-cpu", "ai-edge-litert",
                 "executorch", "torchao", "torch-pruning", "numpy")


@dataclass(frozen=True)
class Artifact:
    """A model file and what a consumer needs to feed it correctly."""

    name: str  # e.g. "tflite-fp32"; unique within a run
    path: str  # absolute path of the file
    format: str  # torch | onnx | tflite | pte
    precision: str  # fp32 | fp16 | int8
    layout: str  # NCHW | NHWC: the input layout the file expects
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"
    input_quantization: dict | None = None  # {"scale": s, "zero_point": z} for integer inputs
    output_quantization: dict | None = None
    sha256: str = ""
    size_bytes: int = 0
    tools: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Artifact:
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_versions(names: tuple[str, ...] = TOOL_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that make artifacts (read from package metadata, no imports)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def finalize(artifact: Artifact, tools: tuple[str, ...]) -> Artifact:
    """Fill in hash, size and the versions of `tools` from the file on disk."""
    p = Path(artifact.path)
    return replace(artifact, sha256=sha256_file(p), size_bytes=p.stat().st_size, tools=tool_versions(tools))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

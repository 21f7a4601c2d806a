"""An artifact is a file plus its metadata; everything downstream reads the metadata, never the file name."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.artifacts.tensors import TensorSpec, specs_from_list, specs_to_list
from pipeline.core.errors import UserError

TOOL_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxscript", "onnx2tf", "tensorflow-cpu", "ai-edge-litert",
                 "executorch", "torchao", "torch-pruning", "tensorly", "numpy")


@dataclass(frozen=True)
class Artifact:
    """A model file and what a consumer needs to feed it correctly."""

    name: str  # e.g. "tflite-pruned-int8-qat"; unique within a run (see `artifact_name`)
    path: str  # absolute path of the file
    format: str  # torch (state_dict) | pt2 (torch.export program) | onnx | tflite | pte
    precision: str  # fp32 | fp16 | int8
    layout: str  # NCHW | NHWC: the input layout the file expects
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"
    input_quantization: dict | None = None  # {"scale": s, "zero_point": z} for integer inputs
    output_quantization: dict | None = None
    sha256: str = ""
    size_bytes: int = 0
    tools: dict = field(default_factory=dict)
    pruned: bool = False
    lowrank: bool = False  # layers factorised by the decompose stage
    quantization: str = "none"  # none | ptq | qat
    params: int = 0  # of the PyTorch model it was made from
    macs: int = 0  # multiply-accumulates per inference, same source
    reference: str = ""  # the artifact whose outputs this one must reproduce; "" for the trained model itself
    role: str = "model"  # model: shipped and measured | intermediate: only an input of a later conversion
    extra: dict = field(default_factory=dict)
    # every input and output tensor, in the order the file takes and returns them (pipeline/artifacts/tensors.py);
    # empty for a file with one input and one output described by the legacy fields above
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["inputs"], d["outputs"] = specs_to_list(self.inputs), specs_to_list(self.outputs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Artifact:
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        d["inputs"], d["outputs"] = specs_from_list(d.get("inputs", ())), specs_from_list(d.get("outputs", ()))
        return cls(**d)


def artifact_name(fmt: str, precision: str, pruned: bool = False, quantization: str = "none",
                  suffix: str = "", lowrank: bool = False) -> str:
    """The naming rule: format, 'lowrank' and 'pruned' if so, precision, quantization method, e.g.
    'pte-pruned-int8-qat' or 'tflite-lowrank-pruned-fp16'."""
    parts = [fmt, "lowrank" if lowrank else "", "pruned" if pruned else "", precision,
             quantization if quantization != "none" else "", suffix]
    return "-".join(p for p in parts if p)


def derived(source: Artifact, **changes: Any) -> Artifact:
    """A new artifact made from `source`: it inherits what describes the model (compression, size in MACs, its
    input and output tensors; a converter that changes a layout or a type passes its own)."""
    base = {"pruned": source.pruned, "lowrank": source.lowrank, "quantization": source.quantization,
            "params": source.params, "macs": source.macs, "role": source.role, "input_shape": source.input_shape,
            "inputs": source.inputs, "outputs": source.outputs}
    base.update(changes)
    return Artifact(**base)


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


_UMASK = os.umask(0)
os.umask(_UMASK)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, then rename: readers never see half a file.

    A full disk (or quota) is a UserError naming the file: the user frees space and reruns; the old file stays.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are ordinary files
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise UserError(f"{path}: cannot be written: {os.strerror(exc.errno)}; free some space and rerun "
                            f"(any earlier {path.name} is unchanged)") from None
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

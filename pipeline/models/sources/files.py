"""source = "onnx" / "tflite": a model file the user already has; it enters the pipeline as an artifact.

An ONNX file goes through to_tflite (to_onnx imports it instead of exporting); a TFLite file is the artifact
itself (to_tflite imports it). Stages that need a PyTorch model (train, prune, quantize, to_executorch) are skipped.
The file's input shape gives the input spec's defaults.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.core.errors import PATH_LIMIT, ConfigError, shown
from pipeline.models.sources import ModelSource

MAX_BYTES = 2 << 30  # protobuf cannot hold more in one ONNX file; no phone model is near it


def _check(kind: str, suffixes: tuple[str, ...]):
    def check(table: dict, recipe_path: Path) -> dict:
        if not table["path"]:
            raise ConfigError(recipe_path, "model.path", f"required when model.source = '{kind}' (the .{kind} file)")
        path = Path(table["path"])
        path = path if path.is_absolute() else recipe_path.parent / path
        if not path.is_file():
            raise ConfigError(recipe_path, "model.path", f"{shown(path, PATH_LIMIT)} is not a file")
        if path.suffix.lower() not in suffixes:
            raise ConfigError(recipe_path, "model.path", f"{shown(path.name)} does not end in {' or '.join(suffixes)}")
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(recipe_path, "model.path", f"{shown(path, PATH_LIMIT)} is larger than 2 GB")
        shape = input_shape(kind, path, recipe_path)
        return {"source": kind, "path": str(path.resolve()), "input_shape": shape, "layout": _layout(kind, shape),
                "recipe": str(recipe_path)}

    return check


def input_shape(kind: str, path: Path, recipe_path: Path) -> list[int]:
    """The file's first input shape, batch fixed to 1 (ONNX: NCHW as declared; TFLite: NHWC as declared)."""
    try:
        if kind == "onnx":
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            graph_inputs = {i.name for i in model.graph.initializer}
            first = next(i for i in model.graph.input if i.name not in graph_inputs)
            dims = [d.dim_value if d.HasField("dim_value") else 0 for d in first.type.tensor_type.shape.dim]
        else:
            from ai_edge_litert.interpreter import Interpreter

            dims = [int(d) for d in Interpreter(model_path=str(path)).get_input_details()[0]["shape"]]
    except Exception as exc:  # a damaged or foreign file: any parser error
        raise ConfigError(recipe_path, "model.path", f"{shown(path, PATH_LIMIT)}"
                                                     f" is not a readable {kind} model: {type(exc).__name__}: "
                          f"{(str(exc).splitlines() or [''])[0][:120]}") from None
    if len(dims) != 4:
        raise ConfigError(recipe_path, "model.path", f"{shown(path.name)}: input of shape {dims}; the pipeline takes "
                          "image models with one 4-D input (batch, channels, height, width in some order)")
    if dims[0] in (0, -1):
        dims[0] = 1
    if any(d <= 0 for d in dims[1:]):
        raise ConfigError(recipe_path, "model.path", f"{shown(path.name)}"
                                                     f": input shape {dims} has free dimensions besides "
                          "the batch; export the model with a fixed input size")
    return dims


def _layout(kind: str, shape: list[int]) -> str:
    """Where the channels are: ONNX files are usually NCHW and TFLite files NHWC; a 1- or 3-wide axis decides."""
    if kind == "onnx":
        return "NHWC" if shape[1] not in (1, 3) and shape[3] in (1, 3) else "NCHW"
    return "NCHW" if shape[3] not in (1, 3) and shape[1] in (1, 3) else "NHWC"


def channels_and_size(spec: dict) -> tuple[int, int, int]:
    """(channels, height, width) of a file source's input."""
    n, a, b, c = spec["input_shape"]
    return (a, b, c) if spec["layout"] == "NCHW" else (c, a, b)


def fingerprint(spec: dict) -> dict:
    h = hashlib.sha256()
    with open(spec["path"], "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"file_sha256": h.hexdigest()}


ONNX = ModelSource("onnx", _check("onnx", (".onnx",)), None, fingerprint)
TFLITE = ModelSource("tflite", _check("tflite", (".tflite",)), None, fingerprint)

"""The bundle's metadata.json (schema `phone-pipeline/bundle/1`), checked with errors that name the key path.

This is the document the Android demo's `BundleMetadata.java` parses; it ignores keys it does not know, so the
pipeline adds its own (`release`, `selection`, per artifact `runtime`, `sample_outputs`, `quantization`, `pruned`).
Example::

    >>> validate_metadata({"schema": "phone-pipeline/bundle/1"}, "metadata.json")
    Traceback (most recent call last):
    pipeline.core.errors.UserError: metadata.json: model: missing
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import Any

from pipeline.core.errors import UserError

SCHEMA = "phone-pipeline/bundle/1"
# Bounds on what verify allocates for a bundle from outside, checked here before any picture is decoded: each sample
# becomes one float32 input of height x width x channels values. A phone model takes tens to hundreds of pixels a
# side and a release ships 16 samples, far inside these.
MAX_SIDE = 4096  # pixels of a model input's side
MAX_INPUT_VALUES = 1024 * 1024 * 3  # one sample's input: 12 MiB of float32
MAX_SAMPLES = 64
MAX_SAMPLE_VALUES = 16 * MAX_INPUT_VALUES  # every sample's input together: 192 MiB of float32
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Tensor lists (`inputs`, `outputs` per artifact; `sample_inputs`): few tensors, short printable names, small ranks,
# each tensor's per-sample size within what verify reads of recorded outputs (samples.MAX_OUTPUTS_PER_SAMPLE)
MAX_TENSORS = 64
MAX_RANK = 8
MAX_TENSOR_VALUES = 1 << 22
_TENSOR_NAME = re.compile(r"^[A-Za-z0-9_.:;/+ -]{1,128}$")
TENSOR_DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")
TENSOR_LAYOUTS = ("NCHW", "NHWC", "NWC")
TASKS = ("image-classification", "tensors")  # tensors: any model; read each artifact's `outputs`


class _Doc:
    """Typed reads from a JSON value that raise UserError naming `label` and the key path."""

    def __init__(self, label: str):
        self.label = label

    def fail(self, path: str, problem: str) -> UserError:
        return UserError(f"{self.label}: {path}: {problem}" if path else f"{self.label}: {problem}")

    def obj(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {type(value).__name__}")
        return value

    def get(self, d: dict, key: str, path: str, kind: type | tuple[type, ...]) -> Any:
        where = f"{path}.{key}" if path else key
        if key not in d:
            raise self.fail(where, "missing")
        value = d[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in _tuple(kind))
        if not ok:
            raise self.fail(where, f"expected {_kind_name(kind)}, got {json_repr(value)}")
        return value

    def one_of(self, d: dict, key: str, path: str, choices: tuple) -> Any:
        where = f"{path}.{key}" if path else key
        if key not in d:
            raise self.fail(where, "missing")
        value = d[key]
        if value not in choices:
            raise self.fail(where, f"expected one of {', '.join(map(json_repr, choices))}, got {json_repr(value)}")
        return value

    def relative_file(self, d: dict, key: str, path: str) -> str:
        value = self.get(d, key, path, str)
        p = PurePosixPath(value)
        if not value or p.is_absolute() or ".." in p.parts or "\\" in value:
            raise self.fail(f"{path}.{key}", f"expected a relative path inside the bundle, got {json_repr(value)}")
        return value


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object",
             type(None): "null", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in _tuple(kind) if k is not object) or "a value"


def json_repr(value: Any) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


NUMBER = (int, float)


def _quantization(doc: _Doc, d: dict, key: str, path: str, required: bool) -> None:
    where = f"{path}.{key}"
    value = doc.get(d, key, path, (dict, type(None)))
    if value is None:
        if required:
            raise doc.fail(where, "required for int8 input")
        return
    scale = doc.get(value, "scale", where, NUMBER)
    if not scale > 0:
        raise doc.fail(f"{where}.scale", f"expected > 0, got {json_repr(scale)}")
    zero = doc.get(value, "zero_point", where, int)
    if not -128 <= zero <= 127:
        raise doc.fail(f"{where}.zero_point", f"expected -128..127, got {zero}")


def _input(doc: _Doc, root: dict) -> dict:
    spec = doc.obj(doc.get(root, "input", "", dict), "input")
    for key in ("height", "width"):
        if not 0 < doc.get(spec, key, "input", int) <= MAX_SIDE:
            raise doc.fail(f"input.{key}", f"expected 1..{MAX_SIDE}")
    channels = doc.one_of(spec, "channels", "input", (1, 3))
    size = spec["height"] * spec["width"] * channels
    if size > MAX_INPUT_VALUES:
        raise doc.fail("input", f"{spec['height']}x{spec['width']}x{channels} is {size:,} values per sample, more "
                       f"than the {MAX_INPUT_VALUES:,} a bundle's input may have")
    for key in ("mean", "std"):
        values = doc.get(spec, key, "input", list)
        if len(values) != channels:
            raise doc.fail(f"input.{key}", f"expected {channels} values (one per channel), got {len(values)}")
        for i, v in enumerate(values):
            if not isinstance(v, NUMBER) or isinstance(v, bool) or (key == "std" and not v > 0):
                raise doc.fail(f"input.{key}[{i}]", f"expected a {'positive ' if key == 'std' else ''}number, "
                               f"got {json_repr(v)}")
    return spec


def _check_sample_budget(doc: _Doc, count: int, per_sample: int, what: str) -> None:
    """The samples' decoded inputs fit the limits above (checked on the numbers alone, before any decoding)."""
    if count > MAX_SAMPLES:
        raise doc.fail("samples", f"{count:,} samples, more than the {MAX_SAMPLES} a bundle may list")
    if count * per_sample > MAX_SAMPLE_VALUES:
        raise doc.fail("samples", f"{count} samples of {what} are {count * per_sample:,} input values, more than "
                       f"the {MAX_SAMPLE_VALUES:,} verify may decode")


def _shape(doc: _Doc, d: dict, path: str, key: str = "shape", batch: bool = True) -> list[int]:
    """A tensor shape: 1..MAX_RANK dimensions of positive sizes (the batch, if `batch`, may be -1: dynamic), at most
    MAX_TENSOR_VALUES values per sample."""
    shape = doc.get(d, key, path, list)
    where = f"{path}.{key}"
    if not 0 < len(shape) <= MAX_RANK:
        raise doc.fail(where, f"expected 1 to {MAX_RANK} dimensions, got {len(shape)}")
    size = 1
    for i, v in enumerate(shape):
        low = -1 if batch and i == 0 else 1
        if not isinstance(v, int) or isinstance(v, bool) or not (v == low or 1 <= v <= MAX_TENSOR_VALUES):
            raise doc.fail(f"{where}[{i}]", f"expected a dimension size of 1..{MAX_TENSOR_VALUES}, got {json_repr(v)}")
        size *= 1 if batch and i == 0 else v
        if size > MAX_TENSOR_VALUES:
            raise doc.fail(where, f"more than the {MAX_TENSOR_VALUES:,} values per sample a tensor may have")
    return shape


def _tensor_name(doc: _Doc, d: dict, path: str) -> str:
    name = doc.get(d, "name", path, str)
    if not _TENSOR_NAME.match(name):
        raise doc.fail(f"{path}.name", f"expected 1 to 128 letters, digits, spaces or _.:;/+-, got {json_repr(name)}")
    return name


def _tensors(doc: _Doc, a: dict, key: str, path: str) -> list[dict]:
    """An artifact's `inputs` or `outputs`: every tensor with name, shape (batch first), dtype, layout for image
    tensors, quantization for integer ones; outputs also name the file of their recorded outputs."""
    where = f"{path}.{key}"
    items = doc.get(a, key, path, list)
    if not 0 < len(items) <= MAX_TENSORS:
        raise doc.fail(where, f"expected 1 to {MAX_TENSORS} tensors, got {len(items)}")
    for i, t in enumerate(items):
        at = f"{where}[{i}]"
        t = doc.obj(t, at)
        _tensor_name(doc, t, at)
        _shape(doc, t, at)
        dtype = doc.one_of(t, "dtype", at, TENSOR_DTYPES)
        if "layout" in t:
            doc.one_of(t, "layout", at, TENSOR_LAYOUTS)
        if "quantization" in t or dtype == "int8":
            _quantization(doc, t, "quantization", at, required=False)
        if "tflite_index" in t and not 0 <= doc.get(t, "tflite_index", at, int) < 1 << 31:
            raise doc.fail(f"{at}.tflite_index", f"expected a tensor index, got {t['tflite_index']}")
        if key == "outputs":
            doc.relative_file(t, "sample_outputs", at)
    if 0 < sum("tflite_index" in t for t in items) < len(items):
        raise doc.fail(where, "tflite_index on some tensors but not all")
    if key == "outputs" and items[0]["sample_outputs"] != a["sample_outputs"]:
        raise doc.fail(f"{where}[0].sample_outputs", f"expected the artifact's sample_outputs "
                       f"{json_repr(a['sample_outputs'])}, got {json_repr(items[0]['sample_outputs'])}")
    return items


def _sample_inputs(doc: _Doc, root: dict, count: int) -> list[dict]:
    """`sample_inputs` of a bundle whose model does not take one picture: one .npy per input, samples first."""
    items = doc.get(root, "sample_inputs", "", list)
    if not 0 < len(items) <= MAX_TENSORS:
        raise doc.fail("sample_inputs", f"expected 1 to {MAX_TENSORS} inputs, got {len(items)}")
    per_sample = 0
    for i, t in enumerate(items):
        at = f"sample_inputs[{i}]"
        t = doc.obj(t, at)
        _tensor_name(doc, t, at)
        doc.relative_file(t, "file", at)
        shape = _shape(doc, {"shape": [1, *doc.get(t, "shape", at, list)]}, at)
        doc.one_of(t, "dtype", at, TENSOR_DTYPES)
        per_sample += int(math.prod(shape))
    _check_sample_budget(doc, count, per_sample, f"{per_sample:,} input values")
    return items


def _artifact(doc: _Doc, a: Any, path: str, spec: dict | None, sample_inputs: list[dict]) -> None:
    """One artifact; `spec` is the picture input (None for a bundle of `sample_inputs`). The legacy one-input fields
    stay required (the Android app reads them); `inputs` and `outputs` are optional for bundles made before them."""
    a = doc.obj(a, path)
    doc.get(a, "name", path, str)
    doc.relative_file(a, "file", path)
    doc.one_of(a, "format", path, ("tflite", "pte"))
    doc.get(a, "precision", path, str)
    layout = doc.one_of(a, "layout", path, ("NCHW", "NHWC") if spec is not None else ("NCHW", "NHWC", ""))
    shape = doc.get(a, "input_shape", path, list)
    if spec is not None:
        h, w, c = spec["height"], spec["width"], spec["channels"]
        want = [1, c, h, w] if layout == "NCHW" else [1, h, w, c]
        if shape != want:
            raise doc.fail(f"{path}.input_shape", f"expected {want} for {layout} and the input spec, got {shape}")
    dtype = doc.one_of(a, "input_dtype", path, ("float32", "int8") if spec is not None else TENSOR_DTYPES)
    _quantization(doc, a, "input_quantization", path, required=dtype == "int8")
    _quantization(doc, a, "output_quantization", path, required=False)
    if not _SHA256.match(doc.get(a, "sha256", path, str)):
        raise doc.fail(f"{path}.sha256", "expected 64 lowercase hex digits")
    doc.relative_file(a, "sample_outputs", path)
    if spec is None or "inputs" in a or "outputs" in a:
        inputs = _tensors(doc, a, "inputs", path)
        _tensors(doc, a, "outputs", path)
        _inputs_match(doc, inputs, spec, sample_inputs, path)


def _inputs_match(doc: _Doc, inputs: list[dict], spec: dict | None, sample_inputs: list[dict], path: str) -> None:
    """A picture bundle's artifact takes the one picture; another's takes one sample input per input, same sizes."""
    if spec is not None:
        if len(inputs) != 1:
            raise doc.fail(f"{path}.inputs", f"a bundle with an `input` picture spec is for a one-input model, "
                           f"got {len(inputs)} inputs (list them in sample_inputs instead)")
        return
    if len(inputs) != len(sample_inputs):
        raise doc.fail(f"{path}.inputs", f"{len(inputs)} inputs but {len(sample_inputs)} sample_inputs")
    for i, (t, s) in enumerate(zip(inputs, sample_inputs, strict=True)):
        if int(math.prod(t["shape"][1:])) != int(math.prod(s["shape"])):
            raise doc.fail(f"{path}.inputs[{i}].shape", f"{t['shape']} does not take sample_inputs[{i}] of shape "
                           f"{s['shape']} per sample")


def validate_metadata(root: Any, label: str = "metadata.json") -> dict:
    """Check a parsed metadata.json; returns it, or raises UserError such as `metadata.json: input.channels: ...`."""
    doc = _Doc(label)
    root = doc.obj(root, "")
    doc.one_of(root, "schema", "", (SCHEMA,))
    model = doc.get(root, "model", "", dict)
    doc.get(model, "name", "model", str)
    doc.get(model, "version", "model", str)
    task = doc.one_of(model, "task", "model", TASKS)
    spec = _input(doc, root) if task == "image-classification" or "input" in root else None
    labels = doc.get(root, "labels", "", list)
    for i, label_name in enumerate(labels):
        if not isinstance(label_name, str):
            raise doc.fail(f"labels[{i}]", f"expected a string, got {json_repr(label_name)}")
    classes = 0
    if task == "image-classification":
        output = doc.get(root, "output", "", dict)
        doc.one_of(output, "kind", "output", ("logits", "probabilities"))
        classes = doc.get(output, "classes", "output", int)
        if classes != len(labels) or classes <= 0:
            raise doc.fail("output.classes", f"{classes} classes but {len(labels)} labels")
    samples = doc.get(root, "samples", "", list)
    if not samples:
        raise doc.fail("samples", "verify needs at least one sample")
    if spec is not None:
        _check_sample_budget(doc, len(samples), spec["height"] * spec["width"] * spec["channels"],
                             f"{spec['height']}x{spec['width']}x{spec['channels']}")
        sample_inputs: list[dict] = []
    else:
        sample_inputs = _sample_inputs(doc, root, len(samples))
    artifacts = doc.get(root, "artifacts", "", list)
    if not artifacts:
        raise doc.fail("artifacts", "a bundle needs at least one artifact")
    seen: set[str] = set()
    for i, a in enumerate(artifacts):
        _artifact(doc, a, f"artifacts[{i}]", spec, sample_inputs)
        if a["name"] in seen:
            raise doc.fail(f"artifacts[{i}].name", f"duplicate artifact name {json_repr(a['name'])}")
        seen.add(a["name"])
    for i, s in enumerate(samples):
        s = doc.obj(s, f"samples[{i}]")
        if spec is not None:
            doc.relative_file(s, "file", f"samples[{i}]")
        label = doc.get(s, "label", f"samples[{i}]", (int, type(None)))
        if label is not None and not 0 <= label < len(labels):
            raise doc.fail(f"samples[{i}].label", f"expected a class index in [0, {len(labels)}), got {label}")
    return root

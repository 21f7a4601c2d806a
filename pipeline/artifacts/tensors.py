"""The tensors a model takes and returns: any number of each, named, recorded in every artifact's metadata.

A model's inputs and outputs are each a list of `TensorSpec` (name, shape with the batch first, dtype, a layout only
for image tensors, and the int8 scale and zero point where the file's tensor is integer). Every consumer feeds and
reads tensors in the order of these lists; "reference form" means float32 (or the integer dtype the model takes,
such as token ids), batch first, in the layout PyTorch takes (NCHW for images).

Artifacts written before these lists existed have one input and one output, described by the legacy fields
`layout`, `input_shape`, `input_dtype`, `input_quantization` and `output_quantization`; `inputs_of` and `outputs_of`
read either.

Example::

    >>> spec = TensorSpec("mfcc", (1, 13, 40))
    >>> TensorSpec.from_dict(spec.to_dict()) == spec
    True
    >>> flat_names({"logits": 1, "extra": (2, 3)})
    ['logits', 'extra.0', 'extra.1']
    >>> flat_names((1, [2, 3]))
    ['output_0', 'output_1.0', 'output_1.1']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import UserError, shown

if TYPE_CHECKING:
    from pipeline.artifacts.artifact import Artifact

IMAGE_LAYOUTS = ("NCHW", "NHWC")
# the layout of a file's tensor whose channels come last (onnx2tf moves them there), by rank
CHANNELS_LAST = {3: "NWC", 4: "NHWC", 5: "NDHWC"}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of a model file."""

    name: str
    shape: tuple[int, ...]  # batch first
    dtype: str = "float32"  # as the file takes or returns it: float32 | float16 | int8 | int32 | int64 | bool ...
    layout: str = ""  # NCHW | NHWC for image tensors, "" for every other tensor (kept as the model has it)
    quantization: dict | None = None  # {"scale": s, "zero_point": z} where the file's tensor is integer

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.layout:
            d["layout"] = self.layout
        if self.quantization:
            d["quantization"] = dict(self.quantization)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> TensorSpec:
        return cls(str(d["name"]), tuple(int(v) for v in d["shape"]), str(d.get("dtype", "float32")),
                   str(d.get("layout", "")), dict(d["quantization"]) if d.get("quantization") else None)


def specs_to_list(specs: Sequence[TensorSpec]) -> list[dict]:
    return [s.to_dict() for s in specs]


def specs_from_list(items: Sequence[Mapping]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec.from_dict(d) for d in items)


def inputs_of(artifact: Artifact) -> tuple[TensorSpec, ...]:
    """The artifact's input tensors, from its list or, for a one-input artifact of before, its legacy fields."""
    if artifact.inputs:
        return artifact.inputs
    return (TensorSpec("input", tuple(artifact.input_shape), artifact.input_dtype, artifact.layout,
                       artifact.input_quantization),)


def outputs_of(artifact: Artifact) -> tuple[TensorSpec, ...]:
    """The artifact's output tensors (a one-output artifact of before: one tensor named "output", shape unknown)."""
    if artifact.outputs:
        return artifact.outputs
    return (TensorSpec("output", (), "int8" if artifact.output_quantization else "float32", "",
                       artifact.output_quantization),)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A model's return value (a tensor, or tuples, lists and dicts of them, nested) -> [(name, tensor)] in order.

    Names are the dict keys and positions joined by dots (a top-level tuple's items are output_0, output_1 ...); a lone
    tensor is named "output". Names must be unique: ONNX and the release metadata key tensors by name, so a name two
    outputs share (`{"a.b": x, "a": {"b": y}}`) is refused with a UserError naming it."""
    out = _flatten(value, prefix)
    if not prefix:
        seen: set[str] = set()
        for name, _ in out:
            if name in seen:
                raise UserError(f"model outputs: two outputs are both named {shown(name)!r} (from dict keys and "
                                "positions joined by dots); rename a key so that every output has its own name")
            seen.add(name)
    return out


def _flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, (tuple, list)):
        out = []
        for i, item in enumerate(value):
            out += _flatten(item, f"{prefix}.{i}" if prefix else f"output_{i}")
        return out
    return [(prefix or "output", value)]


def flat_names(value: Any) -> list[str]:
    return [name for name, _ in flatten(value)]

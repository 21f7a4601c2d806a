"""A model's inputs and outputs as flat lists: the form every stage, exporter and runtime works with.

A user's module may take several tensors and return a tensor, a tuple, a list or a dict of them, nested. `Flat`
wraps it so that it takes its inputs positionally and always returns a flat tuple, in the order and under the names
that `pipeline.artifacts.tensors.flatten` gives; exporters (ONNX, torch.export, ExecuTorch) see only the wrapper.

Example::

    >>> import torch
    >>> class Two(torch.nn.Module):
    ...     def forward(self, x, v):
    ...         return {"scores": x.sum(1), "embedding": (x.mean(1), v)}
    >>> names, outs = outputs(Two(), [torch.ones(2, 3), torch.zeros(2, 4)])
    >>> names, [tuple(o.shape) for o in outs]
    (['scores', 'embedding.0', 'embedding.1'], [(2,), (2,), (2, 4)])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from pipeline.artifacts.tensors import flatten

Inputs = torch.Tensor | Sequence[torch.Tensor]  # one input tensor, or one per input


class OutputError(ValueError):
    """The model returned something that is not tensors, or two outputs under one name."""


def flat_outputs(value: object) -> tuple[list[str], list[torch.Tensor]]:
    """(names, tensors) of a model's return value; OutputError for anything but tensors, or a repeated name."""
    pairs = flatten(value)
    bad = [(n, type(v).__name__) for n, v in pairs if not isinstance(v, torch.Tensor)]
    if bad:
        raise OutputError(f"output {bad[0][0]!r} is a {bad[0][1]}, not a tensor (return tensors, or tuples, lists "
                          "and dicts of them)")
    names = [n for n, _ in pairs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise OutputError(f"two outputs share the name {repeated[0]!r}; give every output its own key")
    return names, [v for _, v in pairs]


def outputs(model: nn.Module, inputs: Sequence[torch.Tensor]) -> tuple[list[str], list[torch.Tensor]]:
    """Run `model` on its inputs (positionally) and flatten what it returns."""
    return flat_outputs(model(*inputs))


class Flat(nn.Module):
    """`model` taking its inputs positionally and returning a flat tuple of tensors (what exporters are given)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(flat_outputs(self.model(*inputs))[1])


def batch_dims(module: nn.Module, count: int, dim) -> object:
    """torch.export's dynamic_shapes giving every one of `count` inputs the batch dimension `dim` (a `Flat` module
    takes them as *inputs, which torch.export names as one argument)."""
    per_input = tuple({0: dim} for _ in range(count))
    return {"inputs": per_input} if isinstance(module, Flat) else per_input


def as_list(inputs: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One input tensor or a sequence of them -> a list (the single-input form of before still works)."""
    return [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)


def example_inputs(specs) -> list[torch.Tensor]:
    """Zero tensors of the given input specs' shapes and dtypes (exporters' examples; MAC counting)."""
    return [torch.zeros(s.shape, dtype=getattr(torch, s.dtype)) for s in specs]


def output_specs(model: nn.Module, inputs: Sequence[torch.Tensor]):
    """The output specs of `model` on `inputs` (names from flattening, shapes with the inputs' batch, dtypes)."""
    from pipeline.artifacts.tensors import TensorSpec

    was_training = model.training
    try:
        with torch.no_grad():
            names, outs = outputs(model.eval(), inputs)
    finally:
        model.train(was_training)
    return tuple(TensorSpec(n, tuple(o.shape), str(o.dtype).removeprefix("torch.")) for n, o in zip(names, outs,
                                                                                                     strict=True))

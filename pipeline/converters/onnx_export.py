"""PyTorch -> ONNX: the dynamo exporter, quietly, to one self-contained file."""

from __future__ import annotations

import contextlib
import io
import warnings

import torch


def export(model: torch.nn.Module, example: torch.Tensor, path, opset: int) -> None:
    """Dynamo export to a single file (weights inside, no .onnx.data beside it)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=["input"], output_names=["logits"])
    program.save(str(path), external_data=False)

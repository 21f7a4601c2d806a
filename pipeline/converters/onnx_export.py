"""PyTorch -> ONNX: the dynamo exporter, quietly, to one self-contained file."""

from __future__ import annotations

import contextlib
import io
import warnings

import torch

from pipeline.artifacts.model_io import Flat, as_list, flat_outputs


def export(model: torch.nn.Module, example: torch.Tensor | list[torch.Tensor], path, opset: int,
           input_names: list[str] | None = None, output_names: list[str] | None = None) -> None:
    """Dynamo export to a single file (weights inside, no .onnx.data beside it); the file's inputs and outputs carry
    the given names, in order (the model's outputs flattened: pipeline/artifacts/model_io.py)."""
    examples = as_list(example)
    input_names = input_names or (["input"] if len(examples) == 1 else [f"input_{i}" for i in range(len(examples))])
    with torch.no_grad():
        returned = _in_eval_mode(model)(*examples)
    if output_names is None:
        output_names = flat_outputs(returned)[0]
    # a one-tensor model is exported as it is (its graph's names are the module's own, which debug reads)
    wrapped = model if isinstance(returned, torch.Tensor) else Flat(model)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapped, tuple(examples), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=input_names, output_names=output_names)
    program.save(str(path), external_data=False)


def _in_eval_mode(model: torch.nn.Module) -> torch.nn.Module:
    """`model.eval()`, except for the module of a torch.export program (a PT2E int8 reference), which refuses eval()
    and is exported in the mode it was captured in."""
    try:
        return model.eval()
    except NotImplementedError:
        return model

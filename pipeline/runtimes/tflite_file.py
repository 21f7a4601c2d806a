"""What a .tflite file declares about itself, read with LiteRT's interpreter (imported only when asked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def io_quantization(path: Path) -> tuple[str, dict | None, dict | None]:
    """(input dtype, input scale/zero point, output scale/zero point) as the TFLite file declares them."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def qparams(detail: dict) -> dict | None:
        scale, zero = detail["quantization"]
        return {"scale": float(scale), "zero_point": int(zero)} if scale else None

    return np.dtype(inp["dtype"]).name, qparams(inp), qparams(out)


def _qparams(detail: dict) -> dict | None:
    scale, zero = detail["quantization"]
    return {"scale": float(scale), "zero_point": int(zero)} if scale else None


def signature_indices(interp) -> tuple[dict[str, int], dict[str, int]]:
    """{name: tensor index} of the inputs and outputs of the file's first signature ({} , {} without one).

    A file converted from a SavedModel (onnx2tf's) lists its outputs sorted by name, not in the model's order, and
    names its tensors after the signature ('serving_default_x:0', 'PartitionedCall:1'): the signature is where the
    model's own names are kept."""
    try:
        signatures = interp._get_full_signature_list()  # the only call that gives indices by name
    except AttributeError:
        return {}, {}
    if not signatures:
        return {}, {}
    first = next(iter(signatures.values()))
    return dict(first.get("inputs", {})), dict(first.get("outputs", {}))


def tensor_details(path: Path) -> tuple[list[dict], list[dict]]:
    """The file's inputs and outputs: name (the signature's where there is one), index, shape, dtype and int8
    quantization, in the file's own order."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    named_in, named_out = signature_indices(interp)

    def rows(details: list[dict], named: dict[str, int]) -> list[dict]:
        by_index = {i: n for n, i in named.items()}
        return [{"name": by_index.get(d["index"], d["name"]), "index": int(d["index"]),
                 "shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                 "quantization": _qparams(d)} for d in details]

    return rows(interp.get_input_details(), named_in), rows(interp.get_output_details(), named_out)


def file_order(path: Path, recorded: dict | None, inputs: int, outputs: int) -> tuple[list[int], list[int]]:
    """For each of the file's inputs and outputs in its own order (what a device runner feeds and returns), the
    position of the model's tensor it is: the identity unless the artifact recorded other indices (onnx2tf sorts
    tensors by name)."""
    if not recorded:
        return list(range(inputs)), list(range(outputs))
    file_in, file_out = tensor_details(path)
    return ([recorded["inputs"].index(r["index"]) for r in file_in],
            [recorded["outputs"].index(r["index"]) for r in file_out])

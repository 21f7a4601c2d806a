"""Multiply-accumulates per inference, counted two independent ways: forward hooks on PyTorch's convolution and
linear layers, and tensor shapes in an exported ONNX graph.

The hooks match by isinstance, so subclasses count too (EfficientNet-Lite's `Conv2dDynamicSamePadding` is an
`nn.Conv2d`; Torch-Pruning's counter matches exact types and skips it). Only convolutions and matrix products
count: element-wise work (normalisation, activations, pooling, adds) is small beside them and runtimes fuse it.

Example::

    >>> import torch.nn as nn
    >>> class SamePadConv(nn.Conv2d):
    ...     pass
    >>> count_macs(nn.Sequential(SamePadConv(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)),
    ...            torch.zeros(1, 3, 4, 4))
    {'macs': 4736, 'params': 1514}
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """MACs of one call of a convolution or linear layer, from its weight and the tensors of that call."""
    if isinstance(module, TRANSPOSED):  # every input element is multiplied into a kernel of outputs
        return inputs[0].numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, CONVOLUTIONS):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return output.numel() * module.in_features  # nn.Linear and its subclasses


def count_macs(model: nn.Module, example: torch.Tensor | list[torch.Tensor]) -> dict:
    """MACs of one forward pass on `example` (one input, or a list: one per input; the batch included) and the
    parameter count of `model`."""
    total = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, inputs, output)

    layers = [m for m in model.modules() if isinstance(m, (*CONVOLUTIONS, *TRANSPOSED, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    try:
        model.eval()  # a counting pass must not move batch-norm statistics
        with torch.no_grad():
            model(*(example if isinstance(example, (list, tuple)) else [example]))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {"macs": int(total), "params": int(sum(p.numel() for p in model.parameters()))}


def _shapes(graph) -> dict[str, list[int]]:
    """Static shapes of every tensor the graph declares (inputs, outputs, inferred values, initializers)."""
    shapes = {}
    for v in [*graph.input, *graph.output, *graph.value_info]:
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = [d.dim_value for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _node_macs(node, shapes: dict[str, list[int]]) -> int:
    """MACs of one Conv, ConvTranspose, Gemm or MatMul node; 0 for any other operator."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type == "Conv":  # weight [M, C/group, k...]: each output element is one dot product of that size
        return math.prod(shapes[node.output[0]]) * math.prod(shapes[node.input[1]][1:])
    if node.op_type == "ConvTranspose":  # weight [C, M/group, k...]: each input element meets one kernel
        return math.prod(shapes[node.input[0]]) * math.prod(shapes[node.input[1]][1:])
    if node.op_type == "Gemm":
        a = shapes[node.input[0]]
        k = a[0] if "transA" in attrs and attrs["transA"].i else a[1]
        return math.prod(shapes[node.output[0]]) * k
    if node.op_type == "MatMul":
        return math.prod(shapes[node.output[0]]) * shapes[node.input[0]][-1]
    return 0


def count_onnx_macs(path: str | Path) -> int:
    """MACs of one inference of an ONNX file with static shapes, from its Conv/Gemm/MatMul nodes after shape
    inference: a cross-check of `count_macs` that shares no code with it."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True, data_prop=True)
    shapes = _shapes(model.graph)
    try:
        return int(sum(_node_macs(node, shapes) for node in model.graph.node))
    except KeyError as exc:
        raise ValueError(f"{path}: no static shape for tensor {exc.args[0]!r}; MACs need fixed input shapes") \
            from None

"""PT2E programs (.pt2, the int8 reference a .pte reproduces): every module's output as the int8 program computes it.

Each node of an exported program carries the module stack it was traced in (`nn_module_stack`). A module's output is
its last node's output, taken after the quantize/dequantize pair that follows it: the rounded value the next layer
really receives. PT2E folds a BatchNorm into the convolution before it, so that node is the BatchNorm's output.
"""

from __future__ import annotations

import numpy as np
import torch

QDQ = ("quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel",
       "choose_qparams")


def _is_qdq(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and any(q in str(node.target) for q in QDQ)


def node_module(node: torch.fx.Node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    return list(stack.values())[-1][0] or None


def _after_qdq(node: torch.fx.Node) -> torch.fx.Node:
    """The dequantize that follows `node`'s quantize, if there is exactly that pair; else `node`."""
    users = list(node.users)
    if len(users) == 1 and "quantize_per_tensor" in str(users[0].target) and "dequantize" not in str(users[0].target):
        deq = [u for u in users[0].users if "dequantize_per_tensor" in str(u.target)]
        if deq:
            return deq[0]
    return node


def module_nodes(graph: torch.fx.Graph) -> dict[str, torch.fx.Node]:
    """module name -> the node whose value is that module's output in the program."""
    out: dict[str, torch.fx.Node] = {}
    for node in graph.nodes:
        if node.op != "call_function" or _is_qdq(node):
            continue
        module = node_module(node)
        if module:
            out[module] = _after_qdq(node)
    return out


def record_modules(module: torch.fx.GraphModule, x: torch.Tensor) -> tuple[dict[str, np.ndarray], object]:
    """({module name: the int8 graph's output of that module}, the graph's return value) on `x`."""
    wanted = module_nodes(module.graph)
    by_node = {node: name for name, node in wanted.items()}
    values: dict[str, np.ndarray] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node):
            result = super().run_node(n)
            if n in by_node and isinstance(result, torch.Tensor):
                values[by_node[n]] = result.detach().float().numpy().copy()
            return result

    with torch.no_grad():
        final = Recorder(module).run(x)
    return values, final


def run_with_intermediates(path: str, x: torch.Tensor) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({module name: its output}, final output) of the saved program on `x` (float32 NCHW)."""
    import torchao.quantization.pt2e  # noqa: F401  registers the quantized_decomposed ops the program calls

    program = torch.export.load(path)
    values, final = record_modules(program.module(), x)
    if isinstance(final, (tuple, list)):
        final = final[0]
    return values, final.detach().float().numpy()

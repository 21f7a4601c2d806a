"""ONNX files from the dynamo exporter: which PyTorch module each node came from, and every intermediate tensor.

The exporter writes each node's module path into its metadata (`pkg.torch.onnx.name_scopes`, e.g.
['', 'features', 'features.1', 'features.1.conv', 'conv2d']); a module's output is the output of the last node in
its own scope. Nodes without that metadata (a user's file from another exporter) are left unmatched.
"""

from __future__ import annotations

import ast

import numpy as np
import onnx

SCOPES = "pkg.torch.onnx.name_scopes"


def node_module(node: onnx.NodeProto) -> str | None:
    """The innermost module a node was exported from ('' for the model itself), or None without metadata."""
    for prop in node.metadata_props:
        if prop.key == SCOPES:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            return scopes[-2] if isinstance(scopes, list) and len(scopes) >= 2 else None
    return None


def module_outputs(model: onnx.ModelProto) -> dict[str, str]:
    """module name -> the ONNX tensor that is its output (the last node of its scope, in graph order)."""
    out: dict[str, str] = {}
    for node in model.graph.node:
        module = node_module(node)
        if module and node.output:
            out[module] = node.output[0]
    return out


def run_with_intermediates(model: onnx.ModelProto, tensors: list[str], x: np.ndarray, batch: int) -> dict:
    """Run `model` (float32 NCHW input `x`, in batches of `batch`) returning the named intermediate tensors too."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
    have = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in have:
            probe.graph.output.append(known.get(name, onnx.ValueInfoProto(name=name)))
            have.add(name)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the tensors as the file computes them
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = session.get_inputs()[0].name
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(0, len(x), batch):
        for name, value in zip(names, session.run(None, {feed: x[i : i + batch]}), strict=True):
            parts[name].append(np.asarray(value, dtype=np.float32))
    return {n: np.concatenate(v) for n, v in parts.items()}


def tensor_shapes(model: onnx.ModelProto, x: np.ndarray) -> dict[str, tuple]:
    """Every node output's shape when `model` runs on `x` (one NCHW sample): what `tensor_pairs` pairs by."""
    names = [o for n in model.graph.node for o in n.output if o]
    values = run_with_intermediates(model, names, x[:1], 1)
    weights = {i.name for i in model.graph.initializer}
    first = next(i.name for i in model.graph.input if i.name not in weights)
    return {first: tuple(x[:1].shape)} | {name: tuple(v.shape) for name, v in values.items()}

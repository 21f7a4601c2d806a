"""TFLite files from onnx2tf: every op's output that holds an ONNX tensor, matched to the ONNX node (and so the
module) it came from; the weighted ops are matched here, by weights, and the rest from them (`tensor_pairs`).

onnx2tf names TFLite tensors after TensorFlow ops (`model/tf.nn.convolution_3/convolution`), not after ONNX nodes,
so names cannot link them. Weights can: each CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED op is matched to the ONNX
Conv, Gemm or MatMul whose weights (moved to ONNX's layout, dequantized for int8) are the closest. An op whose weights
match none (a weight edited in the file, say) falls back to the next unused ONNX node of the same weight shape, and
the page says so with the weight difference. Other ops (adds, pooling, concat, softmax) are paired by their place in
the graph and their shape, starting from these (see `tensor_pairs`).

LiteRT runs with its builtin kernels here (the default XNNPACK delegate keeps no intermediate tensors); the debug
page compares the final output of the XNNPACK run as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from pipeline.layers.tensor_pairs import Pair, fuses_activation, pair_tensors

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
ONNX_WEIGHTED = ("Conv", "Gemm", "MatMul")
ONNX_ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "HardSwish", "Sigmoid", "Tanh")
GOOD_WEIGHTS = 0.25  # relative weight difference under which a match by weights is trusted (int8 rounding: ~1%)


@dataclass
class OnnxWeight:
    index: int  # position in graph order
    node: onnx.NodeProto
    weight: np.ndarray  # as ONNX's Conv ([O, I/g, kh, kw]) or Gemm ([out, in]) take it


def _constant(name: str, init: dict, producers: dict) -> np.ndarray | None:
    """An initializer's value, or a DequantizeLinear of initializers (the weights of a Q/DQ file), as float32."""
    if name in init:
        return numpy_helper.to_array(init[name]).astype(np.float32)
    node = producers.get(name)
    if node is None or node.op_type != "DequantizeLinear" or not all(i in init for i in node.input if i):
        return None
    q, scale = (numpy_helper.to_array(init[i]).astype(np.float32) for i in node.input[:2])
    zero = numpy_helper.to_array(init[node.input[2]]).astype(np.float32) if len(node.input) > 2 and node.input[2] \
        else np.zeros_like(scale)
    if scale.ndim == 1 and q.ndim > 1:  # per-channel along `axis`
        shape = [1] * q.ndim
        shape[_attr(node, "axis", 1)] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q - zero) * scale


def onnx_weights(model: onnx.ModelProto) -> list[OnnxWeight]:
    """The weighted nodes of an ONNX graph with their weights in Conv/Gemm layout."""
    init = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    found = []
    for index, node in enumerate(model.graph.node):
        if node.op_type not in ONNX_WEIGHTED or len(node.input) < 2:
            continue
        w = _constant(node.input[1], init, producers)
        if w is None:
            continue
        if node.op_type == "MatMul" or (node.op_type == "Gemm" and not _attr(node, "transB", 0)):
            w = w.T
        found.append(OnnxWeight(index, node, w))
    return found


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _dequantized(interp, detail: dict) -> np.ndarray:
    value = interp.get_tensor(detail["index"])
    q = detail.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), np.float32)
    if value.dtype in (np.int8, np.uint8, np.int16, np.int32) and scales.size:
        zeros = np.asarray(q.get("zero_points", np.zeros_like(scales)), np.float32)
        shape = [1] * value.ndim
        if scales.size > 1:
            shape[q.get("quantized_dimension", 0)] = scales.size
        return (value.astype(np.float32) - zeros.reshape(shape)) * scales.reshape(shape)
    return value.astype(np.float32)


def to_onnx_layout(op: str, w: np.ndarray) -> np.ndarray:
    """A TFLite op's weight in ONNX's layout: CONV_2D OHWI -> OIHW, DEPTHWISE 1HWO -> O1HW, FULLY_CONNECTED as is."""
    if op == "CONV_2D" and w.ndim == 4:
        return w.transpose(0, 3, 1, 2)
    if op == "DEPTHWISE_CONV_2D" and w.ndim == 4:
        return w.transpose(3, 0, 1, 2)
    return w


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / denom if denom > 0 else float(np.linalg.norm(a))


@dataclass
class OpMatch:
    tflite_tensor: str
    onnx_node: str
    module_tensor: str  # the ONNX tensor whose module the TFLite tensor is the output of
    weight_difference: float
    how: str


def _activation_after(tensor: str, consumers: dict[str, list[onnx.NodeProto]]) -> list[onnx.NodeProto]:
    """The activation nodes reading `tensor`, looking through Quantize/DequantizeLinear pairs (Q/DQ files)."""
    found, frontier = [], [tensor]
    for _ in range(3):
        nxt = []
        for t in frontier:
            for node in consumers.get(t, []):
                if node.op_type in ONNX_ACTIVATIONS:
                    found.append(node)
                elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                    nxt.append(node.output[0])
        frontier = nxt
    return found


def match_ops(interp, ops: list[dict], details: dict[int, dict], model: onnx.ModelProto) -> dict[int, OpMatch]:
    """TFLite weighted op's output tensor index -> its ONNX match."""
    candidates = onnx_weights(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    used: set[int] = set()
    last = -1
    matches = {}
    for op in ops:
        if op["op_name"] not in WEIGHTED or len(op["inputs"]) < 2:
            continue
        w = to_onnx_layout(op["op_name"], _dequantized(interp, details[op["inputs"][1]]))
        same = [c for c in candidates if c.index not in used and c.weight.shape == w.shape]
        if not same:
            continue
        diffs = {c.index: relative_difference(w, c.weight) for c in same}
        best = min(same, key=lambda c: diffs[c.index])
        how = "weights"
        if diffs[best.index] > GOOD_WEIGHTS:
            later = [c for c in same if c.index > last]
            if not later:
                continue
            best, how = later[0], "order and weight shape (weights differ)"
        used.add(best.index)
        last = best.index
        out = op["outputs"][0]
        module_tensor = best.node.output[0]
        if fuses_activation(details[out]["name"]):  # an activation fused into the op: its output is the act's
            after = _activation_after(module_tensor, consumers)
            if len(after) != 1:
                continue
            module_tensor = after[0].output[0]
            how += ", activation fused"
        matches[out] = OpMatch(details[out]["name"], best.node.name, module_tensor, diffs[best.index], how)
    return matches


def weighted_pairs(matches: dict[int, OpMatch], ops: list[dict], details: dict[int, dict]) -> dict[int, Pair]:
    """The weight matches as tensor pairs (the anchors `tensor_pairs.pair_tensors` starts from)."""
    head = {op["outputs"][0]: op for op in ops if op["outputs"]}
    return {index: Pair(m.tflite_tensor.split(";")[0], head[index]["op_name"], m.module_tensor, m.onnx_node,
                        "channels-last", m.how, m.weight_difference, head[index]["index"], m.onnx_node)
            for index, m in matches.items()}


def run_with_intermediates(path: str, x: np.ndarray, batch: int, model: onnx.ModelProto,
                           onnx_shapes: dict[str, tuple]) -> tuple[dict[str, tuple[np.ndarray, Pair]], np.ndarray]:
    """Run the TFLite file on prepared input `x` (artifact layout and type) in batches of `batch`.

    Returns ({onnx tensor name: (float32 value in the TFLite tensor's layout, Pair)}, raw final outputs): every
    tensor `tensor_pairs.pair_tensors` pairs, given every ONNX tensor's shape (`onnx_layers.tensor_shapes`).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=path, num_threads=1, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # the op list (LiteRT's own debugger reads it the same way)
    inp = interp.get_input_details()[0]["index"]
    outputs = [d["index"] for d in interp.get_output_details()]
    pairs: dict[int, Pair] = {}
    parts: dict[int, list[np.ndarray]] = {}
    finals = []
    for i in range(0, len(x), batch):
        interp.set_tensor(inp, np.ascontiguousarray(x[i : i + batch]))
        interp.invoke()
        if not pairs:  # weights are readable once the graph has run (fp16 weights are DEQUANTIZE outputs)
            weighted = weighted_pairs(match_ops(interp, ops, details, model), ops, details)
            pairs = pair_tensors(ops, details, model, onnx_shapes, weighted, [inp], outputs)
        for index in pairs:
            parts.setdefault(index, []).append(_dequantized(interp, details[index]))
        finals.append(interp.get_tensor(outputs[0]))
    found = {p.onnx_tensor: (np.concatenate(parts[idx]), p) for idx, p in pairs.items()}
    return found, np.concatenate(finals)

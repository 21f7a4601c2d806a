"""Which TFLite tensor holds which ONNX tensor, for every op the two graphs share: pools, concats, reshapes, softmax,
adds, not only the weighted ops.

onnx2tf does not carry ONNX tensor names into the TFLite file: it names each tensor after the Keras layer that made it
(`model_1/tf.compat.v1.nn.avg_pool/AvgPool`, `model_1/tf.concat/concat`), and only the graph's inputs and outputs can
keep ONNX names (its -coion option). So pairs are read off the two graphs, from anchors that need no names:

- the graph input and outputs, by position;
- the weighted ops, by their weights (`tflite_layers.match_ops`);
- forward: a TFLite op whose inputs hold ONNX tensors is paired with the ONNX node that reads exactly those tensors,
  is of a kind the op implements (AVERAGE_POOL_2D: AveragePool, ...) and has an output of the same shape, as is or
  channels-last; a fused ReLU moves the pair to the ONNX activation after the node;
- the layout ops onnx2tf inserts (a PAD before a padded pool, a TRANSPOSE before a Flatten) carry their input on;
- an op that continues a node's own computation (a pool then a multiplier, when the ONNX node has no consumer of
  that shape) takes the pair over: the ONNX value is the last tensor of the chain;
- backward: a paired op's input that holds nothing yet is paired with the ONNX node's input in the same position, if
  the shapes allow (this reaches past ops written as several TFLite ops, such as LRN);
- a forward pair that an op holding nothing reads is marked unconfirmed (it may be a step inside a node onnx2tf wrote
  as several ops), and debug never names it as where the divergence begins.

Nothing is paired by value, so a wrong op cannot hide behind a tensor that happens to match. Each pair says how it
was found. For example::

    pairs = pair_tensors(ops, details, model, onnx_shapes, weighted, inputs=[0], outputs=[97])
    pairs[52].onnx_tensor, pairs[52].how  # ('p1', 'graph position and shape')
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import onnx

# TFLite builtin op -> the ONNX node kinds it implements.
KINDS = {
    "CONV_2D": ("Conv",), "DEPTHWISE_CONV_2D": ("Conv",), "TRANSPOSE_CONV": ("ConvTranspose",),
    "FULLY_CONNECTED": ("Gemm", "MatMul"), "BATCH_MATMUL": ("MatMul", "Gemm"),
    "AVERAGE_POOL_2D": ("AveragePool", "GlobalAveragePool", "ReduceMean"),
    "MEAN": ("GlobalAveragePool", "ReduceMean", "AveragePool"), "SUM": ("ReduceSum",),
    "MAX_POOL_2D": ("MaxPool", "GlobalMaxPool"), "REDUCE_MAX": ("GlobalMaxPool", "ReduceMax"),
    "CONCATENATION": ("Concat",), "RESHAPE": ("Reshape", "Flatten", "Squeeze", "Unsqueeze"),
    "SQUEEZE": ("Squeeze", "Reshape", "Flatten"), "EXPAND_DIMS": ("Unsqueeze", "Reshape"),
    "SOFTMAX": ("Softmax",), "LOG_SOFTMAX": ("LogSoftmax",), "ADD": ("Add", "Sum"), "SUB": ("Sub",), "MUL": ("Mul",),
    "DIV": ("Div",), "RELU": ("Relu",), "RELU6": ("Clip",), "RELU_N1_TO_1": ("Clip",), "LOGISTIC": ("Sigmoid",),
    "TANH": ("Tanh",), "HARD_SWISH": ("HardSwish",), "LEAKY_RELU": ("LeakyRelu",), "PRELU": ("PRelu",),
    "GELU": ("Gelu",), "LOCAL_RESPONSE_NORMALIZATION": ("LRN",), "TRANSPOSE": ("Transpose",), "PAD": ("Pad",),
    "PADV2": ("Pad",), "MIRROR_PAD": ("Pad",), "RESIZE_BILINEAR": ("Resize", "Upsample"),
    "RESIZE_NEAREST_NEIGHBOR": ("Resize", "Upsample"), "STRIDED_SLICE": ("Slice",), "SLICE": ("Slice",),
    "GATHER": ("Gather",), "MINIMUM": ("Min", "Clip"), "MAXIMUM": ("Max", "Relu", "Clip"), "EXP": ("Exp",),
    "LOG": ("Log",), "SQRT": ("Sqrt",), "RSQRT": ("Reciprocal",), "ABS": ("Abs",), "NEG": ("Neg",), "POW": ("Pow",),
    "SQUARED_DIFFERENCE": ("Sub",), "L2_NORMALIZATION": ("LpNormalization",),
}
LAYOUT_OPS = ("PAD", "PADV2", "TRANSPOSE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE", "CAST")
TRANSPARENT = ("Identity", "Dropout")  # ONNX nodes that pass their input on (onnxsim removes them before onnx2tf)
ACTIVATIONS = ("Relu", "Clip")  # what LiteRT fuses into the op before it
UNCONFIRMED = "unconfirmed"  # a forward pair read by an op that holds nothing: never named as where divergence begins
ACTIVATION_OPS = ("RELU", "RELU6", "RELU_N1_TO_1", "MINIMUM", "MAXIMUM")


@dataclass(frozen=True)
class Pair:
    """A TFLite tensor that holds an ONNX tensor's value."""

    tflite_tensor: str  # its name (the first op of a fused name)
    tflite_op: str  # the op that wrote it, e.g. AVERAGE_POOL_2D
    onnx_tensor: str
    onnx_node: str  # the ONNX node that computes onnx_tensor
    layout: str  # "same" or "channels-last" (the ONNX tensor's axis 1 is the TFLite tensor's last axis)
    how: str  # weights, graph input/output, graph position and shape
    weight_difference: float | None = None
    head_op: int = -1  # the TFLite op that reads the inputs of the ONNX node it implements (-1: none known)
    head_node: str = ""  # that ONNX node (a Conv whose ReLU was fused: the Conv)
    found_by: str = "weights"  # weights, graph output, forward, backward (a backward pair overrides a forward one)


def fuses_activation(tflite_name: str) -> bool:
    """Whether a TFLite op's output name (the TensorFlow ops fused into it, joined by ';') includes a ReLU or clip:
    then its output is the activation's, wherever the activation stands in the list (a FULLY_CONNECTED op is named
    'model_1/tf.linalg.matmul/MatMul;model_1/tf.nn.relu_2/Relu;...')."""
    return any(word in part.lower() for part in tflite_name.split(";") for word in ("relu", "clip"))


def label(node: onnx.NodeProto, position: int) -> str:
    """A node's name, or its kind and position in graph order when the file gives it none."""
    return node.name or f"{node.op_type}#{position}"


def layout_of(tflite_shape: tuple, onnx_shape: tuple, prefer: str = "channels-last") -> str | None:
    """How a TFLite tensor of `tflite_shape` can hold an ONNX tensor of `onnx_shape`, or None if it cannot; when
    both layouts fit (as many channels as rows and columns), `prefer` (the layout of the op's input) decides."""
    t, o = tuple(int(d) for d in tflite_shape), tuple(int(d) for d in onnx_shape)
    fits = (["channels-last"] if len(o) >= 3 and t == (o[0], *o[2:], o[1]) else []) + (["same"] if t == o else [])
    if not fits:
        return None
    return prefer if prefer in fits else fits[0]


class OnnxGraph:
    """The ONNX side: nodes in order, who reads what (through Identity and Dropout), constants and shapes."""

    def __init__(self, model: onnx.ModelProto, shapes: dict[str, tuple]):
        self.nodes = list(model.graph.node)
        self.shapes = shapes
        self.by_label = {label(n, i): n for i, n in enumerate(self.nodes)}
        self.labels = {id(n): label(n, i) for i, n in enumerate(self.nodes)}
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.constant = {i.name for i in model.graph.initializer} | {""}
        for node in self.nodes:  # graph order: a node of constants only (a weight's Reshape) is a constant
            if node.op_type == "Constant" or (node.input and all(i in self.constant for i in node.input)):
                self.constant.update(node.output)
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in dict.fromkeys(self.inputs(node)):
                self.readers.setdefault(name, []).append(node)

    def canonical(self, tensor: str) -> str:
        """`tensor`, or what an Identity or Dropout before it passes on."""
        for _ in range(len(self.nodes)):
            node = self.producer.get(tensor)
            if node is None or node.op_type not in TRANSPARENT:
                return tensor
            tensor = node.input[0]
        return tensor

    def inputs(self, node: onnx.NodeProto) -> list[str]:
        """The node's inputs that are activations (not constants), through Identity and Dropout."""
        return [self.canonical(i) for i in node.input if i not in self.constant]

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self.readers.get(tensor, []) if n.op_type not in TRANSPARENT]


class TfliteGraph:
    """The TFLite side: ops in order, the op that wrote each tensor, which tensors are constants."""

    def __init__(self, ops: list[dict], details: dict[int, dict], inputs: list[int]):
        self.ops, self.details = ops, details
        self.producer = {o: op for op in ops for o in op["outputs"]}
        self.readers: dict[int, list[dict]] = {}
        for op in ops:
            for i in op["inputs"]:
                self.readers.setdefault(i, []).append(op)
        self.constant = {i for i in details if i not in self.producer and i not in inputs} | {-1}
        for op in ops:  # fp16 weights are DEQUANTIZE outputs of constants
            if all(i in self.constant for i in op["inputs"]):
                self.constant.update(op["outputs"])

    def inputs(self, op: dict) -> list[int]:
        return [i for i in op["inputs"] if i not in self.constant]

    def shape(self, index: int) -> tuple:
        return tuple(int(d) for d in self.details[index]["shape"])

    def name(self, index: int) -> str:
        return self.details[index]["name"].split(";")[0]


class _Pairing:
    def __init__(self, tfl: TfliteGraph, g: OnnxGraph):
        self.tfl, self.g = tfl, g
        self.pairs: dict[int, Pair] = {}  # TFLite tensor index -> pair
        self.holds: dict[int, str] = {}  # TFLite tensor index -> the ONNX tensor it holds (paired or carried)
        self.used: set[str] = set()  # ONNX tensors paired
        self.layouts: dict[int, str] = {}  # TFLite tensor index -> the layout it holds its ONNX tensor in

    def add(self, index: int, tensor: str, how: str, head: int, head_node: str = "",
            weight_difference: float | None = None, prefer: str = "channels-last", found_by: str = "forward") -> bool:
        lay = layout_of(self.tfl.shape(index), self.g.shapes.get(tensor, ()), prefer)
        if lay is None or tensor in self.used or index in self.pairs:
            return False
        node = self.g.producer.get(tensor)
        name = self.g.labels[id(node)] if node is not None else tensor
        op = self.tfl.producer.get(index)
        self.pairs[index] = Pair(self.tfl.name(index), op["op_name"] if op else "input", tensor, name, lay, how,
                                 weight_difference, head, head_node or name, found_by)
        self.holds[index] = tensor
        self.layouts[index] = lay
        self.used.add(tensor)
        return True

    def inherited(self, op: dict) -> str:
        """The layout `op`'s output most likely has: its first input's (flipped by a TRANSPOSE)."""
        ins = self.tfl.inputs(op)
        lay = self.layouts.get(ins[0], "channels-last") if ins else "channels-last"
        if op["op_name"] == "TRANSPOSE":
            return "same" if lay == "channels-last" else "channels-last"
        return lay

    def fused_activation(self, op: dict, node: onnx.NodeProto) -> onnx.NodeProto | None:
        """The ONNX activation after `node` that LiteRT fused into `op` (its output name says so), if any."""
        if op["op_name"] in ACTIVATION_OPS or node.op_type in ACTIVATIONS:
            return None
        if not fuses_activation(self.tfl.details[op["outputs"][0]]["name"]):
            return None
        after = [n for n in self.g.consumers(node.output[0]) if n.op_type in ACTIVATIONS]
        return after[0] if len(after) == 1 else None

    def forward(self, op: dict) -> None:
        if len(op["outputs"]) != 1:
            return
        out = op["outputs"][0]
        if out in self.pairs or out in self.tfl.constant:
            return
        held = [self.holds.get(i) for i in self.tfl.inputs(op)]
        if not held or None in held:
            return
        node = self._reader(op, held)
        if node is not None:
            act = self.fused_activation(op, node)
            tensor = act.output[0] if act is not None else node.output[0]
            how = "graph position and shape" + (", activation fused" if act is not None else "")
            if self.add(out, tensor, how, op["index"], self.g.labels[id(node)], prefer=self.inherited(op)):
                return
        if op["op_name"] in LAYOUT_OPS and len(set(held)) == 1:
            self.holds[out] = held[0]  # a PAD or TRANSPOSE onnx2tf inserted: the same ONNX value, other layout
            self.layouts[out] = layout_of(self.tfl.shape(out), self.g.shapes.get(held[0], ()),
                                          self.inherited(op)) or self.inherited(op)
            return
        self._continue(op, held)

    def _reader(self, op: dict, held: list[str]) -> onnx.NodeProto | None:
        """The first unpaired ONNX node reading exactly `held`, of a kind `op` implements, with a fitting output."""
        kinds = KINDS.get(op["op_name"], ())
        for node in self.g.consumers(held[0]):
            if node.op_type in kinds and node.output[0] not in self.used and set(self.g.inputs(node)) == set(held) \
                    and layout_of(self.tfl.shape(op["outputs"][0]), self.g.shapes.get(node.output[0], ())):
                return node
        return None

    def _continue(self, op: dict, held: list[str]) -> None:
        """`op` reads a paired tensor alone and has no ONNX node of its own: it finishes that node's value."""
        ins = self.tfl.inputs(op)
        if len(ins) != 1 or ins[0] not in self.pairs or len(self.tfl.readers.get(ins[0], [])) != 1:
            return
        out, tensor = op["outputs"][0], held[0]
        shape = self.tfl.shape(out)
        if layout_of(shape, self.g.shapes.get(tensor, ())) is None:
            return
        if any(layout_of(shape, self.g.shapes.get(n.output[0], ())) for n in self.g.consumers(tensor)):
            return  # an ONNX node of that shape reads it: `op` may be that node, of a kind not in KINDS
        before = self.pairs.pop(ins[0])
        self.used.discard(tensor)
        self.add(out, tensor, f"{before.how}, then {op['op_name']}", before.head_op, before.head_node,
                 before.weight_difference, before.layout)

    def backward(self, op: dict) -> None:
        """Pair the inputs of an op paired with the ONNX node it implements with that node's inputs."""
        out = op["outputs"][0] if op["outputs"] else -1
        pair = self.pairs.get(out)
        if pair is None or pair.head_op != op["index"]:
            return
        node = self.g.by_label.get(pair.head_node)
        if node is None or node.op_type not in KINDS.get(op["op_name"], ()):
            return
        ins, expected = self.tfl.inputs(op), self.g.inputs(node)
        if len(ins) != len(expected):
            return
        for index, tensor in zip(ins, expected, strict=True):
            self._pair_input(self._through_layout(index, tensor), tensor, self.layouts.get(out, "channels-last"))

    def _through_layout(self, index: int, tensor: str) -> int:
        """`index`, or the tensor before the layout ops (a PAD before a padded conv) whose shape fits `tensor`."""
        for _ in range(8):
            if layout_of(self.tfl.shape(index), self.g.shapes.get(tensor, ())) is not None:
                return index
            op = self.tfl.producer.get(index)
            if op is None or op["op_name"] not in LAYOUT_OPS or len(self.tfl.inputs(op)) != 1:
                return index
            index = self.tfl.inputs(op)[0]
        return index

    def _pair_input(self, index: int, tensor: str, prefer: str) -> None:
        """Pair a paired op's input with the ONNX input it reads; this takes the tensor over from a forward pair
        (the forward pair sat inside the node's own ops: a pool whose border onnx2tf then corrects)."""
        if index in self.holds or index not in self.tfl.producer or tensor not in self.g.producer:
            return
        how = "graph position and shape (the input of the next op)"
        old = next((i for i, p in self.pairs.items() if p.onnx_tensor == tensor), None)
        if old is None:
            self.add(index, tensor, how, self.tfl.producer[index]["index"], prefer=prefer, found_by="backward")
            return
        before = self.pairs[old]
        if before.found_by != "forward" or layout_of(self.tfl.shape(index), self.g.shapes[tensor]) is None:
            return
        del self.pairs[old]
        self.holds.pop(old, None)
        self.used.discard(tensor)
        self.add(index, tensor, how, before.head_op, before.head_node, before.weight_difference, prefer, "backward")


def pair_tensors(ops: list[dict], details: dict[int, dict], model: onnx.ModelProto, onnx_shapes: dict[str, tuple],
                 weighted: dict[int, Pair], inputs: list[int], outputs: list[int]) -> dict[int, Pair]:
    """TFLite tensor index -> the ONNX tensor it holds, for every tensor that can be paired (see the module doc).

    `weighted`: the pairs found by weights; `onnx_shapes`: every ONNX tensor's shape for a batch of one."""
    g = OnnxGraph(model, onnx_shapes)
    tfl = TfliteGraph(ops, details, inputs)
    p = _Pairing(tfl, g)
    first_input = next(i.name for i in model.graph.input if i.name not in g.constant)
    if inputs:
        p.holds[inputs[0]] = first_input
        p.layouts[inputs[0]] = layout_of(tfl.shape(inputs[0]), onnx_shapes.get(first_input, ())) or "channels-last"
    for index, pair in weighted.items():
        lay = layout_of(tfl.shape(index), onnx_shapes.get(pair.onnx_tensor, ()))  # convolutions write NHWC
        if lay is not None and pair.onnx_tensor not in p.used:
            p.pairs[index] = replace(pair, layout=lay)
            p.holds[index] = pair.onnx_tensor
            p.layouts[index] = lay
            p.used.add(pair.onnx_tensor)
    for index, out in zip(outputs, model.graph.output, strict=False):
        if index not in p.pairs:
            op = tfl.producer.get(index)
            p.add(index, g.canonical(out.name), "graph output", op["index"] if op else -1, found_by="graph output")
    for _ in range(4):  # forward then backward, until nothing new is paired
        before = len(p.pairs), len(p.holds)
        for op in ops:
            p.forward(op)
        for op in reversed(ops):
            p.backward(op)
        if (len(p.pairs), len(p.holds)) == before:
            break
    return {index: _confirmed(p, index, pair) for index, pair in p.pairs.items()}


def _confirmed(p: _Pairing, index: int, pair: Pair) -> Pair:
    """`pair`, marked unconfirmed when it was found forward and an op reading it holds no ONNX tensor: the tensor may
    sit inside a node onnx2tf wrote as several ops, so its error would not be that node's."""
    if pair.found_by != "forward":
        return pair
    strays = [op["op_name"] for op in p.tfl.readers.get(index, []) if not any(o in p.holds for o in op["outputs"])]
    if not strays:
        return pair
    readers = ", ".join(sorted(set(strays)))
    return replace(pair, how=f"{pair.how} ({UNCONFIRMED}: read by {readers}, which holds no ONNX tensor)",
                   found_by="forward, unconfirmed")

"""Small networks with every structure pruning must keep consistent (residual adds, depthwise and grouped
convolutions, channel shuffle, concatenation and squeeze-excitation), and weights that make a network's outputs differ
per input, with the check that they do: a parity check on outputs that are the same for every input proves nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(c, reduced, 1)
        self.expand = nn.Conv2d(reduced, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(s))))


class ZooNet(nn.Module):
    """stem -> residual depthwise block with SE -> grouped conv + channel shuffle -> two branches concatenated."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                nn.Conv2d(32, 32, 1, bias=False), nn.BatchNorm2d(32))
        self.se = SqueezeExcite(32, 8)
        self.grouped = nn.Sequential(nn.Conv2d(32, 64, 3, 1, 1, groups=4, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.branch_a = nn.Sequential(nn.Conv2d(64, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.branch_b = nn.Sequential(nn.Conv2d(64, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.Upsample(scale_factor=2))
        self.head = nn.Sequential(nn.Conv2d(64, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.classifier = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.se(self.dw(x)))
        x = channel_shuffle(self.grouped(x), 4)
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        return self.classifier(self.head(x).mean((2, 3)))


def varied_inputs(n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """`n` noise pictures of `shape` (C, H, W), each with its own level per channel and its own contrast.

    Plain noise averages out in a network's global pooling, so a random network gives nearly the same output for
    every such input (8 of 10 outputs varied by less than 1% over 8 inputs); pictures differ in level and contrast.
    """
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, *shape, generator=g)
    contrast = torch.empty(n, 1, 1, 1).uniform_(0.5, 2.0, generator=g)
    level = torch.empty(n, shape[0], 1, 1).uniform_(-1.0, 1.0, generator=g)
    return noise * contrast + level


def calibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> nn.Module:
    """Give BatchNorm real running statistics (random-init mobile nets otherwise output near-constant logits)."""
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    return model.eval()


def assert_outputs_differ_per_input(outputs: np.ndarray, rel: float = 0.01, classes: bool = True) -> None:
    """Fail unless every output varies over the samples by more than `rel` of its mean magnitude, and (for a
    classifier) the top-1 class is not the same for every sample: parity on constant outputs passes trivially.

    >>> assert_outputs_differ_per_input(np.random.default_rng(0).standard_normal((8, 10)))
    """
    flat = outputs.reshape(len(outputs), -1).astype(np.float64)
    assert len(flat) > 1 and np.isfinite(flat).all(), f"{len(flat)} samples, finite: {np.isfinite(flat).all()}"
    constant = flat.std(axis=0) <= rel * np.abs(flat).mean(axis=0)
    assert not constant.any(), (f"{int(constant.sum())} of {flat.shape[1]} outputs (first at index "
                                f"{int(np.argmax(constant))}) vary by less than {rel:.1%} over {len(flat)} inputs")
    if classes:
        assert len(np.unique(flat.argmax(1))) > 1, f"the top-1 class is {flat[0].argmax()} for all {len(flat)} inputs"


def _random_weight(op: str, index: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """He-normal kernels, small biases, BatchNorm scales near 1 (statistics are measured afterwards)."""
    if (op, index) in (("Conv", 1), ("Gemm", 1)):
        fan_in = int(np.prod(shape[1:]))  # Conv OIHW; Gemm's B with transB = 1 is (out, in)
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    if op == "BatchNormalization":
        return {1: rng.uniform(0.5, 1.5, shape), 2: rng.normal(0.0, 0.1, shape), 3: np.zeros(shape),
                4: np.ones(shape)}[index]
    if (op, index) in (("Conv", 2), ("Gemm", 2)):
        return rng.normal(0.0, 0.1, shape)
    raise AssertionError(f"no initializer for input {index} of {op}")


def with_random_weights(src: Path, dest: Path, inputs: np.ndarray, seed: int = 0) -> Path:
    """`src` with every ConstantOfShape weight replaced by a seeded random one and each BatchNormalization's running
    mean and variance measured per channel on `inputs` (N x C x H x W), one layer after another.

    The onnx wheel's 'light' model-zoo files fill every weight with 0.02, so they output the same values for every
    input and any parity check on them passes (that hid an inception conversion error).
    """
    import onnx
    from onnx import numpy_helper

    model, rng = onnx.load(str(src)), np.random.default_rng(seed)
    graph = model.graph
    shapes = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    role = {t: (n.op_type, i) for n in graph.node for i, t in enumerate(n.input)}
    made = [n for n in graph.node if n.op_type == "ConstantOfShape" and n.input[0] in shapes]
    weights = {n.output[0]: _random_weight(*role[n.output[0]], tuple(int(d) for d in shapes[n.input[0]]), rng)
               for n in made}
    spent = {n.input[0] for n in made}
    for n in made:
        graph.node.remove(n)
    for field in (graph.initializer, graph.input):
        for t in [t for t in field if t.name in spent]:
            field.remove(t)
    for name, value in weights.items():
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
        graph.input.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, value.shape))
    for name, value in _batchnorm_statistics(model, inputs).items():
        index = next(i for i, t in enumerate(graph.initializer) if t.name == name)
        graph.initializer[index].CopyFrom(numpy_helper.from_array(value, name))
    onnx.checker.check_model(model)
    dest.write_bytes(model.SerializeToString())
    return dest


def _batchnorm_statistics(model, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Each BatchNormalization's running mean and variance, named as in `model`, measured in one pass over `inputs`.

    A copy of the graph normalizes every BatchNormalization input by the batch's own per-channel statistics (as
    training mode does), so each layer's statistics are those of its input with every earlier layer measured.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper

    batch = onnx.ModelProto()
    batch.CopyFrom(model)
    graph, nodes, wanted = batch.graph, [], {}
    for n in graph.node:
        if n.op_type == "BatchNormalization":
            x, mean, var = n.input[0], n.input[3], n.input[4]
            stats = {mean: f"{mean}__batch", var: f"{var}__batch"}
            nodes += [helper.make_node("ReduceMean", [x], [f"{x}__mean"], axes=[0, 2, 3]),
                      helper.make_node("Sub", [x, f"{x}__mean"], [f"{x}__centred"]),
                      helper.make_node("Mul", [f"{x}__centred", f"{x}__centred"], [f"{x}__square"]),
                      helper.make_node("ReduceMean", [f"{x}__square"], [f"{x}__var"], axes=[0, 2, 3]),
                      helper.make_node("Squeeze", [f"{x}__mean"], [stats[mean]], axes=[0, 2, 3]),
                      helper.make_node("Squeeze", [f"{x}__var"], [stats[var]], axes=[0, 2, 3])]
            n.input[3], n.input[4] = stats[mean], stats[var]
            wanted.update({v: k for k, v in stats.items()})
        nodes.append(n)
    needed = set(wanted)  # keep what the statistics need: a flatten to a fixed batch of 1 may follow the last one
    kept = []
    for n in reversed(nodes):
        if needed & set(n.output):
            kept.append(n)
            needed |= set(n.input)
    del graph.node[:], graph.output[:], graph.value_info[:]
    graph.node.extend(reversed(kept))
    graph.output.extend(helper.make_empty_tensor_value_info(name) for name in wanted)
    if not wanted:
        return {}
    constants = {t.name for t in graph.initializer}
    data = next(t for t in graph.input if t.name not in constants)
    data.type.tensor_type.shape.dim[0].dim_value = len(inputs)
    session = ort.InferenceSession(batch.SerializeToString(), providers=["CPUExecutionProvider"])
    found = session.run(list(wanted), {data.name: inputs.astype(np.float32)})
    return {wanted[name]: value.astype(np.float32) for name, value in zip(wanted, found, strict=True)}

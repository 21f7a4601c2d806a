"""The PyTorch side of a layer-by-layer comparison: every module's output on a batch, and which modules converters fold.

Converters merge layers: the ONNX exporter and PT2E fold a BatchNorm into the convolution before it, LiteRT fuses an
activation into the op that feeds it. The recorded data flow (which module consumed which module's output tensor)
lets a runtime tensor be matched to the module whose output it really is, instead of to the folded one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

FOLDED_INTO = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # normalisations folded into the op before them
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.SiLU, nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.GELU)


@dataclass
class ModuleOutputs:
    """Outputs of the reference model's modules, in the order they finished, and the data flow between them."""

    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # module name -> output (float32, NCHW)
    kinds: dict[str, str] = field(default_factory=dict)  # module name -> class name
    consumers: dict[str, list[str]] = field(default_factory=dict)  # module -> modules whose first input it produced

    def folded_into(self, name: str) -> str | None:
        """The BatchNorm that consumed `name`'s output alone, i.e. the module a converter folds `name` into."""
        users = self.consumers.get(name, [])
        bns = [u for u in users if self.kinds[u] in {c.__name__ for c in FOLDED_INTO}]
        return bns[0] if len(users) == 1 and bns else None

    def activation_after(self, name: str) -> str | None:
        """The activation module that consumed `name`'s output, if any (LiteRT fuses it into `name`'s op)."""
        acts = [u for u in self.consumers.get(name, []) if self.kinds[u] in {c.__name__ for c in ACTIVATIONS}]
        return acts[0] if len(acts) == 1 else None

    def canonical(self, name: str, present: set[str]) -> str:
        """`name`, or the BatchNorm folded into it when the runtime has no tensor of that BatchNorm itself."""
        bn = self.folded_into(name)
        return bn if bn is not None and bn not in present else name


def capture(model: nn.Module, x: torch.Tensor | list[torch.Tensor]) -> ModuleOutputs:
    """Run `model` on `x` once (one input, or a list: one per input), recording every module that returns one tensor
    (names as in named_modules)."""
    got = ModuleOutputs()
    producer: dict[int, str] = {}  # id of an output tensor -> the last module that returned it
    keep: list[torch.Tensor] = []  # keeps ids unique while the pass runs

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: object) -> None:
            if not isinstance(output, torch.Tensor) or not name:
                return
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if first is not None and id(first) in producer:
                got.consumers.setdefault(producer[id(first)], []).append(name)
            got.outputs[name] = output.detach().float().clone().numpy()
            got.kinds[name] = type(module).__name__
            producer[id(output)] = name
            keep.append(output)
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()]
    try:
        with torch.no_grad():
            model.eval()(*(x if isinstance(x, (list, tuple)) else [x]))
    finally:
        for h in handles:
            h.remove()
    return got

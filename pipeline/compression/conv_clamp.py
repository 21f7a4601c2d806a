"""A PT2E quantizer for a convolution followed by a clamp (ReLU6 = hardtanh(0, 6)): one int8 output, after the clamp.

XNNPACK's quantizer fuses conv + ReLU but not conv + hardtanh: it observes the convolution's output, negatives and
values over 6 included, and the hardtanh shares those parameters. The int8 tensor after ReLU6 then spends its codes
on a range the clamp has already cut (a third to a half of them on EfficientNet-Lite0, whose every activation is
ReLU6). TensorFlow's converter fuses ReLU6 into the convolution and quantizes what comes out of the clamp; this does
the same: the convolution takes int8 input and weights and has no output observer, the clamp's output is observed.
ExecuTorch's XNNPACK lowering fuses the clamp into the convolution's output (FuseActivationPass), so the program runs
one int8 convolution per pair, as before. Measured by `python -m pipeline.evidence.int8_fidelity`.

Quantization-aware training keeps BatchNorm in the graph until convert folds it (prepare_qat_pt2e annotates
conv -> batch_norm -> hardtanh, then rewrites conv + BN into its fake-quantized fused form): there the pattern is the
three ops, the BatchNorm's output unobserved, as XNNPACK's own conv_bn_relu pattern does for ReLU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchao.quantization.pt2e.quantizer import (
    QuantizationAnnotation,
    QuantizationConfig,
    Quantizer,
    get_bias_qspec,
    get_input_act_qspec,
    get_output_act_qspec,
    get_weight_qspec,
)
from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY
from torchao.quantization.pt2e.utils import _is_bn_node, _is_conv_node

_CLAMPS = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)


def _annotated(node: object) -> bool:
    ann = node.meta.get(Q_ANNOTATION_KEY) if isinstance(node, torch.fx.Node) else None
    return ann is not None and ann._annotated


class ConvClampFusion(Quantizer):
    """Annotate each conv [-> batch_norm] -> hardtanh chain (each op the next one's only user) as one pattern with
    `config`; `quantized(node)` False on any node of it leaves it to the next quantizer (a layer kept in float)."""

    def __init__(self, config: QuantizationConfig, quantized: Callable[[torch.fx.Node], bool] | None = None):
        super().__init__()
        self.config, self.quantized = config, quantized

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        for clamp in model.graph.nodes:
            if clamp.op != "call_function" or clamp.target not in _CLAMPS:
                continue
            chain = _conv_chain(clamp.args[0])
            if chain is None:
                continue
            conv, norm = chain
            weight, bias = conv.args[1], conv.args[2] if len(conv.args) > 2 else None
            params = [weight, *([bias] if isinstance(bias, torch.fx.Node) else [])]
            pattern = [clamp, *([norm] if norm is not None else []), conv, *params]
            if any(_annotated(n) for n in pattern) or (self.quantized and not all(map(self.quantized, pattern))):
                continue
            inputs = {conv.args[0]: get_input_act_qspec(self.config), weight: get_weight_qspec(self.config)}
            if len(params) > 1:
                inputs[bias] = get_bias_qspec(self.config)
            conv.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=inputs, _annotated=True)
            clamp.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(output_qspec=get_output_act_qspec(self.config),
                                                                  _annotated=True)
            for node in (*params, *([norm] if norm is not None else [])):  # taken, with no output observer
                node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(_annotated=True)
        return model

    def validate(self, model: torch.fx.GraphModule) -> None:
        pass


def _conv_chain(node: object) -> tuple[torch.fx.Node, torch.fx.Node | None] | None:
    """(conv, batch_norm or None) when `node` is a convolution, or a BatchNorm of one, that feeds only the clamp."""
    if not isinstance(node, torch.fx.Node) or len(node.users) != 1:
        return None
    if _is_conv_node(node):
        return node, None
    conv = node.args[0] if _is_bn_node(node) else None
    if isinstance(conv, torch.fx.Node) and _is_conv_node(conv) and len(conv.users) == 1:
        return conv, node
    return None

"""A PT2E quantizer for zero padding: the pad takes the int8 parameters of the tensor it pads.

XNNPACK's quantizer leaves `F.pad` unannotated. Its consumer (a convolution) then observes the padded tensor
separately, and the histogram observer, which sees the extra zeros, gives it other parameters than the pad's
input: the lowered program converts to float before every pad and back to int8 after it (EfficientNet-Lite's
"same" padding: 17 float pads and 34 converts, measured with `phone-pipeline profile`). Zero padding only copies
values and adds zeros, which int8 holds exactly at its zero point, so sharing the input's parameters is exact.
Lowering needs a partitioner config that accepts a quantized pad (`executorch_lowering.quantized_pad`).
"""

from __future__ import annotations

import torch
from torchao.quantization.pt2e.quantizer import (
    QuantizationAnnotation,
    Quantizer,
    SharedQuantizationSpec,
)
from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

_PADS = (torch.ops.aten.pad.default, torch.ops.aten.constant_pad_nd.default)


def is_zero_pad(node: torch.fx.Node) -> bool:
    """A constant pad with value 0 and no cropping (negative amounts)."""
    if node.op != "call_function" or node.target not in _PADS or any(p < 0 for p in node.args[1]):
        return False
    if node.target == torch.ops.aten.pad.default:
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value")
        return mode == "constant" and not value
    return not (node.args[2] if len(node.args) > 2 else node.kwargs.get("value", 0))


def _annotation(node: torch.fx.Node) -> QuantizationAnnotation | None:
    ann = node.meta.get(Q_ANNOTATION_KEY)
    return ann if ann is not None and ann._annotated else None


class ZeroPadSharing(Quantizer):
    """Annotate each zero pad that reads an int8 tensor (sharing its parameters), or whose consumers all take int8
    (the model's float input: observed here, as the consumer would have).

    A pad between an int8 producer and a layer kept in float stays int8 too: left in float, ExecuTorch's XNNPACK
    preprocessing (InsertPadQDQPass) tags it int8 anyway and the float convolution after it fails to lower
    ("Weight and Input should both be quantized"), as it did before this quantizer existed.
    """

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        for pad in model.graph.nodes:
            if not is_zero_pad(pad) or _annotation(pad) is not None or not pad.users:
                continue
            source = pad.args[0]
            produced = _annotation(source) if isinstance(source, torch.fx.Node) else None
            if produced is not None and produced.output_qspec is not None:
                in_spec = SharedQuantizationSpec(source)
            else:
                wanted = [(_annotation(u) or QuantizationAnnotation()).input_qspec_map.get(pad) for u in pad.users]
                if any(spec is None for spec in wanted):
                    continue
                in_spec = wanted[0]
            pad.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map={source: in_spec},
                                                               output_qspec=SharedQuantizationSpec((source, pad)),
                                                               _annotated=True)
        return model

    def validate(self, model: torch.fx.GraphModule) -> None:
        pass

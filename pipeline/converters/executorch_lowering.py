"""PyTorch -> ExecuTorch program delegated to XNNPACK, with a count of what was delegated."""

from __future__ import annotations

import torch


def delegation_summary(edge_program) -> dict:
    """How many operators XNNPACK took, and the names of those it left to the portable CPU kernels."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge_program.exported_program().graph_module)
    # getitem only unpacks the delegate's outputs: it is structure, not an operator left to slow kernels.
    left = {op: b.non_delegated for op, b in sorted(info.delegation_by_operator.items())
            if b.non_delegated > 0 and op != "getitem"}
    return {
        "delegated_ops": int(info.num_delegated_nodes),
        "non_delegated_ops": int(sum(left.values())),
        "delegated_subgraphs": int(info.num_delegated_subgraphs),
        "not_delegated": left,
    }


def quantized_pad_configs() -> list:
    """XNNPACK's partitioner configs, with constant padding accepted in int8 too.

    The stock config takes a pad in fp32 only, so an int8 pad (see compression/pad_sharing.py) was run as
    dequantize, fp32 pad, quantize. Accepted in int8, XNNPACK runs it as an 8-bit pad or fuses it into the
    convolution after it (EfficientNet-Lite0: 16 of 17 pads fused, 34 converts gone, measured by
    experiments/executorch_int8_profile.py). XNNPACK requires the pad's input and output parameters to be equal,
    which pad_sharing makes them; a pad between other parameters stays an fp32 pad between converts, as before
    (else the program would fail to load: xnn_status_invalid_parameter).
    """
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    from executorch.backends.xnnpack.partition.config.generic_node_configs import ConstantPadConfig
    from executorch.backends.xnnpack.partition.config.xnnpack_config import ConfigPrecisionType
    from executorch.backends.xnnpack.utils.quant_utils import is_dequant, is_quant

    def same_parameters(pad: torch.fx.Node) -> bool:
        source, users = pad.args[0], list(pad.users)
        return (isinstance(source, torch.fx.Node) and is_dequant(source) and len(users) == 1
                and is_quant(users[0]) and tuple(source.args[1:]) == tuple(users[0].args[1:]))

    class QuantizedPadConfig(ConstantPadConfig):
        def supported_precision_types(self) -> list:
            return [ConfigPrecisionType.FP32, ConfigPrecisionType.STATIC_QUANT]

        def get_node_and_deps(self, node: torch.fx.Node, ep) -> list:
            return super().get_node_and_deps(node, ep) if same_parameters(node) else [node]

    return [QuantizedPadConfig if c is ConstantPadConfig else c for c in ALL_PARTITIONER_CONFIGS]


def lower(model: torch.nn.Module, example: torch.Tensor) -> tuple[bytes, dict]:
    """torch.export -> edge dialect with the XNNPACK partitioner -> ExecuTorch program bytes (+ delegation summary).

    `model` may be a plain module or a PT2E-converted (quantized) graph module.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported = torch.export.export(model, (example,))
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner(configs=quantized_pad_configs())])
    summary = delegation_summary(edge)
    return edge.to_executorch().buffer, summary

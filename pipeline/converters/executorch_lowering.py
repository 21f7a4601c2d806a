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


def lower(model: torch.nn.Module, example: torch.Tensor) -> tuple[bytes, dict]:
    """torch.export -> edge dialect with the XNNPACK partitioner -> ExecuTorch program bytes (+ delegation summary).

    `model` may be a plain module or a PT2E-converted (quantized) graph module.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported = torch.export.export(model, (example,))
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    summary = delegation_summary(edge)
    return edge.to_executorch().buffer, summary

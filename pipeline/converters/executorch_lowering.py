"""PyTorch -> ExecuTorch program delegated to XNNPACK, with a count of what was delegated.

`lower` works in this process; `lower_files` lowers saved models (a state_dict artifact or a .pt2 int8 reference)
in one child process (`python -m pipeline.converters.executorch_lowering`), so the to_executorch stage can run
beside the ONNX and TFLite conversions without sharing torch.export's global state with them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from pipeline.core.proc import python_module, run

MARK = "executorch_lowering: "  # prefixes each result line on stdout


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


def lower(model: torch.nn.Module, example: torch.Tensor | list[torch.Tensor]) -> tuple[bytes, dict]:
    """torch.export -> edge dialect with the XNNPACK partitioner -> ExecuTorch program bytes (+ delegation summary).

    `model` may be a plain module or a PT2E-converted (quantized) graph module; `example` one input or a list (one
    per input). A model that returns tuples or dicts is lowered with its outputs flattened
    (pipeline/artifacts/model_io.py).
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from pipeline.artifacts.model_io import Flat, as_list

    examples = tuple(as_list(example))
    with torch.no_grad():
        returned = model(*examples)
    exported = torch.export.export(model if isinstance(returned, torch.Tensor) else Flat(model), examples)
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner(configs=quantized_pad_configs())])
    summary = delegation_summary(edge)
    return edge.to_executorch().buffer, summary


def lower_files(jobs: list[tuple[dict, Path]], what: str, timeout: float = 1800) -> list[dict]:
    """Lower each (artifact dict, .pte path) in one child process, writing every file atomically; returns each
    job's delegation summary, in order. A failure is a ToolError naming `what` and the child's last line."""
    args = [{"artifact": artifact, "out": str(out)} for artifact, out in jobs]
    proc = run(python_module("pipeline.converters.executorch_lowering", json.dumps(args)), what=what,
               timeout=timeout)
    lines = [x for x in proc.stdout.decode(errors="replace").splitlines() if x.startswith(MARK)]
    return [json.loads(line[len(MARK):]) for line in lines]


def _load(artifact) -> torch.nn.Module:
    """The model an artifact holds: a state_dict rebuilt from its spec, or a saved torch.export program."""
    if artifact.format == "pt2":
        from pipeline.runtimes.torch_export import TorchExportSession

        return TorchExportSession(artifact, 1).module
    from pipeline.models.checkpoint import load_model

    return load_model(artifact)


def _child(jobs: list[dict]) -> None:
    from pipeline.artifacts.artifact import Artifact, atomic_write_bytes
    from pipeline.artifacts.model_io import example_inputs
    from pipeline.artifacts.tensors import inputs_of
    from pipeline.core.errors import one_line

    torch.set_num_threads(1)  # lowering is Python; the stages beside it get the other core
    for job in jobs:
        artifact = Artifact.from_dict(job["artifact"])
        try:
            buffer, summary = lower(_load(artifact), example_inputs(inputs_of(artifact)))
        except Exception as exc:  # noqa: BLE001 - one line for the parent's ToolError
            sys.exit(f"{artifact.name}: lowering failed: {one_line(exc, 200)}")
        atomic_write_bytes(Path(job["out"]), buffer)
        print(MARK + json.dumps(summary), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("jobs", help="JSON: [{artifact, out}, ...]")
    _child(json.loads(parser.parse_args().jobs))

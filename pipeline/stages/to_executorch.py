"""to_executorch: an XNNPACK-delegated ExecuTorch program (.pte), with a count of what was delegated."""

from __future__ import annotations

import torch

from pipeline.artifact import Artifact, atomic_write_bytes, finalize
from pipeline.config import Config
from pipeline.errors import ToolError
from pipeline.models.checkpoint import load_model
from pipeline.stage import Context, Stage, StageOutput


def wanted(target: Config) -> list[str]:
    return [k.split("-")[1] for k in target.data["artifacts"]["build"] if k.startswith("pte-")]


def settings(recipe: Config, target: Config) -> dict:
    return {"precisions": wanted(target)}


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
    """torch.export -> edge dialect with the XNNPACK partitioner -> ExecuTorch program bytes."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported = torch.export.export(model, (example,))
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    summary = delegation_summary(edge)
    return edge.to_executorch().buffer, summary


def run(ctx: Context) -> StageOutput:
    if "fp32" not in wanted(ctx.target):
        return StageOutput((), {"skipped": "the target builds no ExecuTorch artifact"})
    src = ctx.inputs["train"].artifact("torch-fp32")
    model = load_model(src)
    try:
        buffer, summary = lower(model, torch.zeros(src.input_shape))
    except Exception as exc:
        raise ToolError(f"to_executorch: lowering failed: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}") from None
    path = ctx.out_dir / "model_fp32.pte"
    atomic_write_bytes(path, buffer)
    if summary["not_delegated"]:
        left = ", ".join(f"{k} x{v}" for k, v in summary["not_delegated"].items())
        ctx.log.warning("ops left outside XNNPACK (portable kernels, slower): %s", left)
    ctx.log.info("XNNPACK took %d ops in %d subgraphs; %d left to portable kernels", summary["delegated_ops"],
                 summary["delegated_subgraphs"], summary["non_delegated_ops"])
    art = finalize(Artifact(name="pte-fp32", path=str(path), format="pte", precision="fp32", layout="NCHW",
                            input_shape=src.input_shape, extra={"backend": "xnnpack", "delegation": summary}),
                   ("torch", "executorch"))
    return StageOutput((art,), {"delegation": summary})


STAGE = Stage("to_executorch", "ExecuTorch .pte fp32, XNNPACK-delegated", ("train",), settings, run,
              tools=("torch", "executorch"))

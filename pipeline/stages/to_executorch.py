"""to_executorch: XNNPACK-delegated ExecuTorch programs (.pte fp32) of every float model, with delegation counts."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.artifact import artifact_name, atomic_write_bytes, derived, finalize
from pipeline.config import Config
from pipeline.converters.executorch_lowering import lower
from pipeline.errors import ToolError
from pipeline.models.checkpoint import load_model
from pipeline.stage import Context, Stage, StageOutput
from pipeline.stages.train import skip_reason


def wanted(target: Config) -> bool:
    return "pte-fp32" in target.data["artifacts"]["build"]


def settings(recipe: Config, target: Config) -> dict:
    return {"fp32": wanted(target)}


def write_program(model: torch.nn.Module, example: torch.Tensor, path: Path, what: str, log) -> dict:
    """Lower and write one .pte atomically; returns the delegation summary (warns about ops left out)."""
    try:
        buffer, summary = lower(model, example)
    except Exception as exc:
        raise ToolError(f"{what}: lowering failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    atomic_write_bytes(path, buffer)
    if summary["not_delegated"]:
        left = ", ".join(f"{k} x{v}" for k, v in summary["not_delegated"].items())
        log.warning("%s: ops left outside XNNPACK (portable kernels, slower): %s", path.name, left)
    log.info("%s: XNNPACK took %d ops in %d subgraph(s); %d left to portable kernels", path.name,
             summary["delegated_ops"], summary["delegated_subgraphs"], summary["non_delegated_ops"])
    return summary


def run(ctx: Context) -> StageOutput:
    reason = skip_reason(ctx.recipe, "to_executorch")
    if reason:
        return StageOutput((), {"skipped": reason})
    if not wanted(ctx.target):
        return StageOutput((), {"skipped": "the target builds no fp32 ExecuTorch artifact"})
    arts = []
    for src in ctx.upstream_artifacts():
        if src.format != "torch" or src.role != "model":
            continue
        name = artifact_name("pte", "fp32", src.pruned, lowrank=src.lowrank)
        path = ctx.out_dir / f"{name}.pte"
        summary = write_program(load_model(src), torch.zeros(src.input_shape), path, f"to_executorch: {name}",
                                ctx.log)
        arts.append(finalize(derived(src, name=name, path=str(path), format="pte", precision="fp32", layout="NCHW",
                                     reference=src.name, extra={"backend": "xnnpack", "delegation": summary}),
                             ("torch", "executorch")))
    return StageOutput(tuple(arts), {"delegation": {a.name: a.extra["delegation"] for a in arts}})


STAGE = Stage("to_executorch", "ExecuTorch .pte fp32 of every float model, XNNPACK-delegated",
              ("train", "decompose", "prune"),
              settings, run, tools=("torch", "executorch"))

"""to_executorch: XNNPACK-delegated ExecuTorch programs: .pte fp32 of every float model, and .pte int8 of every PT2E
int8 reference the quantize stage saved (.pt2), with delegation counts.

All programs are lowered in one child process. The runner starts this stage in the background right after the
last training stage: it needs nothing the ONNX and TFLite conversions make, so on two cores it runs beside them.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.artifacts.artifact import Artifact, artifact_name, derived, finalize
from pipeline.converters.executorch_lowering import lower_files
from pipeline.models.recipe_model import skip_reason
from pipeline.recipe.config import Config
from pipeline.stages.contract import Context, Stage, StageOutput


def wanted(target: Config) -> dict[str, bool]:
    build = target.data["artifacts"]["build"]
    return {"fp32": "pte-fp32" in build, "int8": "pte-int8" in build}


def settings(recipe: Config, target: Config) -> dict:
    return wanted(target)


def log_delegation(path: Path, summary: dict, log) -> None:
    """Say how much of a program XNNPACK took, and warn about ops it left to the portable kernels."""
    if summary["not_delegated"]:
        left = ", ".join(f"{k} x{v}" for k, v in summary["not_delegated"].items())
        log.warning("%s: ops left outside XNNPACK (portable kernels, slower): %s", path.name, left)
    log.info("%s: XNNPACK took %d ops in %d subgraph(s); %d left to portable kernels", path.name,
             summary["delegated_ops"], summary["delegated_subgraphs"], summary["non_delegated_ops"])


def _program(src: Artifact, out_dir: Path) -> tuple[Artifact, Path]:
    """The .pte artifact (without its delegation yet) that lowering `src` makes, and its path."""
    if src.format == "pt2":
        name = artifact_name("pte", "int8", src.pruned, src.quantization, lowrank=src.lowrank)
        path = out_dir / f"{name}.pte"
        return derived(src, name=name, path=str(path), format="pte", precision="int8", layout=src.layout,
                       reference=src.name,
                       extra={"quantized_by": f"{src.extra['quantized_by']}; lowered to ExecuTorch XNNPACK",
                              "backend": "xnnpack"}), path
    name = artifact_name("pte", "fp32", src.pruned, lowrank=src.lowrank)
    path = out_dir / f"{name}.pte"
    return derived(src, name=name, path=str(path), format="pte", precision="fp32", layout=src.layout,
                   reference=src.name, extra={"backend": "xnnpack"}), path


def skip(recipe: Config, target: Config) -> str | None:
    return skip_reason(recipe, "to_executorch")


def run(ctx: Context) -> StageOutput:
    reason = skip(ctx.recipe, ctx.target)
    if reason:
        return StageOutput.skip(reason)
    want = wanted(ctx.target)
    sources = [a for a in ctx.upstream_artifacts()
               if (want["fp32"] and a.format == "torch" and a.role == "model") or (want["int8"] and a.format == "pt2")]
    if not sources:
        return StageOutput.skip("the target builds no ExecuTorch artifact")
    programs = [_program(src, ctx.out_dir) for src in sources]
    summaries = lower_files([(src.to_dict(), path) for src, (_, path) in zip(sources, programs, strict=True)],
                            "to_executorch: lowering to XNNPACK")
    arts = []
    for (art, path), summary in zip(programs, summaries, strict=True):
        log_delegation(path, summary, ctx.log)
        art.extra["delegation"] = summary
        arts.append(finalize(art, ("torch", "executorch")))
    return StageOutput(tuple(arts), {"delegation": {a.name: a.extra["delegation"] for a in arts}})


STAGE = Stage("to_executorch", "ExecuTorch .pte: fp32 of every float model and int8 of every PT2E reference, "
              "XNNPACK-delegated", ("train", "decompose", "prune", "quantize"),
              settings, run, tools=("torch", "executorch"), background=True, skip=skip)

"""report: report.json, report.md and report.png from the manifest (rebuilt every run; cheap)."""

from __future__ import annotations

from pipeline.recipe.config import Config
from pipeline.report import run_report as report
from pipeline.stages.contract import Context, Stage, StageOutput


def settings(recipe: Config, target: Config) -> dict:
    return {}


def run(ctx: Context) -> StageOutput:
    path = report.write(ctx.out_dir, dict(ctx.manifest or {}))
    return StageOutput((), {"report": str(path)})


STAGE = Stage("report", "report.md, report.json and the accuracy/latency plot", ("evaluate", "benchmark"),
              settings, run, cached=False)

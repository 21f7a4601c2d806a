"""report: report.json, report.md and report.png from the manifest (rebuilt every run; cheap)."""

from __future__ import annotations

from pipeline import report
from pipeline.config import Config
from pipeline.stage import Context, Stage, StageOutput


def settings(recipe: Config, target: Config) -> dict:
    return {}


def run(ctx: Context) -> StageOutput:
    path = report.write(ctx.out_dir, ctx.options["manifest"])
    return StageOutput((), {"report": str(path)})


STAGE = Stage("report", "report.md, report.json and the accuracy/latency plot", ("evaluate", "benchmark"),
              settings, run, cached=False)

"""report: report.json, report.md and report.png from the manifest (rebuilt every run; cheap).

One measurement happens here, only when an int8 artifact does not pay (report/int8_payoff.py): that artifact and its
float source are profiled per operator (a few runs, one thread) into profile/<artifact>.json, the page
`phone-pipeline profile` writes, so the report can name the op that costs most. It happens here because only the
report knows which artifacts do not pay; a page of the very same file already in the run folder is reused, so a
rebuilt report (`phone-pipeline report RUN_DIR`) reads the same numbers without running anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.manifest import artifacts
from pipeline.core.errors import shown
from pipeline.measure import profile_page
from pipeline.measure.operator_profile import FORMATS, evaluation_input, failed, record
from pipeline.recipe.config import Config
from pipeline.report import int8_payoff
from pipeline.report import run_report as report
from pipeline.stages.contract import Context, Stage, StageOutput

PROFILE_RUNS = 10  # after 2 warm-up runs: enough to name the op that costs most, a second or so on a real model
PROFILE_THREADS = 1


def settings(recipe: Config, target: Config) -> dict:
    return {}


def run(ctx: Context) -> StageOutput:
    manifest = dict(ctx.manifest or {})
    arts = {n: Artifact.from_dict(a) for n, a in artifacts(manifest).items()}
    profiled = profile_not_paying(report.build(manifest)["artifacts"], arts, ctx.out_dir,
                                  lambda art: evaluation_input(ctx.recipe, art))
    for name, why in profiled.items():
        ctx.log.info("%s: profiled per operator (%s)", name, why)
    path = report.write(ctx.out_dir, manifest)
    return StageOutput((), {"report": str(path), "profiled": sorted(profiled)})


def profile_not_paying(rows: list[dict], arts: dict[str, Artifact], run_dir: Path,
                       input_of: Callable[[Artifact], np.ndarray | None]) -> dict[str, str]:
    """Profile each int8 artifact of the report `rows` that does not pay, and its float source, unless a page of
    the same file is in `run_dir/profile` already; a failure becomes a page saying why. Returns {name profiled now:
    "done" or the failure}. `input_of(artifact)` gives the reference-layout input a .pte runs on."""
    by_name = {r["name"]: r for r in rows}
    done: dict[str, str] = {}
    for f in int8_payoff.not_paying(rows):
        for name in (f["artifact"], f["float_source"]):
            row = by_name[name]
            if row["format"] not in FORMATS or name in done or int8_payoff.page_of(run_dir, row) is not None:
                continue
            try:
                rec = record(arts[name], input_of(arts[name]), PROFILE_RUNS, PROFILE_THREADS)
            except Exception as exc:  # the report says it, the run goes on: profiling is a diagnosis, not a gate
                rec = failed(arts[name], f"{type(exc).__name__}: {shown(exc)}")
            profile_page.write(run_dir / "profile", rec)
            done[name] = rec.get("error") or "done"
    return done


STAGE = Stage("report", "report.md, report.json and the accuracy/latency plot", ("evaluate", "benchmark"),
              settings, run, cached=False)

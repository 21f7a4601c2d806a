"""Where an artifact's time goes, operator by operator (`phone-pipeline profile RUN_DIR ARTIFACT`).

A .pte runs in ExecuTorch with its event tracer on (ETDump, read by the devtools Inspector): one row per operator
event with its p50 time and share, summed per kernel (e.g. "Convolution (NHWC, QC8) IGEMM" against "... F32 ...")
and per category (int8 or float compute, quantize/dequantize converts, layout copies, operators left outside the
delegate). A .tflite file gets LiteRT's op table (op, count, tensor types), without times: LiteRT's Python API has
none per operator. The measuring lives in pipeline/measure (operator_profile.py and the two runtimes' files), where
the run's report stage also uses it for int8 artifacts that do not pay.

For example::

    page, result = profile(Path("build/runs/efficientnet-lite0__host"), "pte-int8-ptq", runs=20)
    # build/runs/.../profile/pte-int8-ptq.md (+ .json)
"""

from __future__ import annotations

from pathlib import Path

from pipeline.artifacts.manifest import find_artifact
from pipeline.core.errors import UserError, artifact_failed, shown
from pipeline.engine.recipes import recipe_of
from pipeline.measure.operator_profile import FORMATS, evaluation_input, record


def profile(run_dir: Path, name: str, runs: int = 20, threads: int = 1,
            recipe: str | None = None) -> tuple[Path, dict]:
    """Profile artifact `name` of a run folder on one of its evaluation inputs; returns the page's path and the
    profile it shows. A .pte's input comes from the recipe's data: `recipe` (`--recipe`), or the bundled recipe the
    manifest names (`engine.recipes.recipe_of`)."""
    from pipeline.measure import profile_page
    manifest, _, art = find_artifact(run_dir, name, companions=False)
    if art.format not in FORMATS:
        raise UserError(f"{shown(art.name)}: a {art.format} artifact cannot be profiled per operator; profile supports "
                        f"{' and '.join(f'.{f}' for f in FORMATS)} artifacts")
    x = evaluation_input(recipe_of(manifest, run_dir, recipe), art) if art.format == "pte" else None
    try:
        rec = record(art, x, runs, threads)
    except UserError:
        raise
    except Exception as exc:  # a damaged or foreign file in the run folder; our own bugs show the same way here
        raise artifact_failed(art.path, art.name, "be profiled", exc) from None
    return profile_page.write(run_dir / "profile", rec), rec["profile"]

"""`release`: run the pipeline for a recipe and a target (everything cached after a first run), then bundle what
passed. One function behind both doors, the CLI's `phone-pipeline release` and the Python API's `release(...)`."""

from __future__ import annotations

from pathlib import Path

from pipeline.recipe.config import Config
from pipeline.release import archive
from pipeline.release.bundle import Release


def release(recipe: Config, target: Config, build_dir: Path, out: Path | None = None, threads: int | None = None,
            search: bool = False) -> Release:
    """Run (cached) and bundle `recipe` on `target`; with `search`, the search's chosen trial and only its artifact.

    >>> from pipeline.engine.recipes import load_recipe
    >>> from pipeline.recipe.targets import load_target
    >>> release(load_recipe("fashion-mnist-mobilenetv2"), load_target("host"), Path("build")).archive  # doctest: +SKIP
    PosixPath('build/release/fashion-mnist-mobilenetv2-0.1.0-host.tar.gz')
    """
    archive.source_date_epoch()  # a bad SOURCE_DATE_EPOCH is refused before any work, not after it
    from pipeline.debug import explain_gate_failures
    from pipeline.engine import runner
    from pipeline.engine.recipes import load_recipe
    from pipeline.recipe.targets import load_target
    from pipeline.release import bundle

    ship = None
    if search:  # the search's chosen trial: its settings, its final run folder, only its artifact
        from pipeline.search import chosen_run, overrides_of

        final, run_dir = chosen_run(build_dir, recipe, target)
        sets, target_sets = overrides_of(final)
        recipe, target = load_recipe(str(recipe.path), sets), load_target(str(target.path), target_sets)
        opts = runner.RunOptions(build_dir=build_dir, threads=threads, no_gates=True, run_dir=run_dir,
                                 explain=explain_gate_failures, overrides={"recipe": sets, "target": target_sets})
        run_dir, ship = runner.run(recipe, target, opts), final["artifact"]
    else:
        opts = runner.RunOptions(build_dir=build_dir, threads=threads, explain=explain_gate_failures)
        run_dir = runner.run(recipe, target, opts)
    return bundle.build(run_dir, recipe, out if out else build_dir / "release", ship)

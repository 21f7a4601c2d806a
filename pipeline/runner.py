"""Compose the stages for a recipe and a target: resolve the cache, run what changed, record the manifest."""

from __future__ import annotations

import logging
import platform
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from pipeline import distributed, proc, report, run_lock, thread_tuner
from pipeline.artifact import atomic_write_json, sha256_file, tool_versions
from pipeline.cache import Cache, stage_key
from pipeline.config import Config
from pipeline.data import array_cache
from pipeline.devices import check_reachable
from pipeline.errors import GateError, StageCrash, UserError
from pipeline.names import run_folder_name
from pipeline.stage import Context, Stage, StageOutput
from pipeline.stages import STAGES, stage_names

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class RunOptions:
    build_dir: Path = Path("build")
    from_stage: str | None = None  # rerun this stage and every later one
    only: tuple[str, ...] = ()  # run just these; earlier ones must be cached
    force: bool = False
    no_gates: bool = False
    threads: int | None = None  # overrides the target's compute threads
    explain: bool = True  # a failed evaluate gate writes the layer-by-layer page of each artifact that failed it
    run_dir: Path | None = None  # where manifest and report go (default: BUILD_DIR/runs/<recipe>__<target>)
    overrides: dict | None = None  # what `--set` / `--target-set` changed, recorded in the manifest


def run_dir(build_dir: Path, recipe: Config, target: Config) -> Path:
    return build_dir / "runs" / run_folder_name(recipe.name, target.name)


def _check_stage_names(opts: RunOptions) -> None:
    names = stage_names()
    for n in ([opts.from_stage] if opts.from_stage else []) + list(opts.only):
        if n not in names:
            raise UserError(f"unknown stage {n!r}: the stages are {', '.join(names)}")


def _forced(stage: Stage, opts: RunOptions) -> bool:
    if opts.force:
        return True
    if opts.from_stage:
        names = stage_names()
        return names.index(stage.name) >= names.index(opts.from_stage)
    return False


def _host_info(threads: int) -> dict:
    import os

    return {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "compute_threads": threads,
        "training_threads": thread_tuner.describe() or threads,
    }


def run(recipe: Config, target: Config, opts: RunOptions) -> Path:
    """Run the pipeline; returns the run folder (manifest.json, report.*). Raises GateError on a failed gate."""
    _check_stage_names(opts)
    threads = opts.threads or target.data["compute"]["threads"]
    import torch

    if threads == 0:  # auto: training tunes its own count, every other stage runs on one thread
        thread_tuner.enable()
        threads = 1
    else:
        thread_tuner.disable()
    torch.set_num_threads(threads)
    build_dir = opts.build_dir.resolve()
    array_cache.set_root(build_dir / "cache" / "data")
    distributed.init()
    writer = distributed.is_writer()
    scratch = None if writer else Path(tempfile.mkdtemp(prefix=f"pipeline-rank{distributed.rank_and_world()[0]}-"))
    try:
        out_dir = opts.run_dir.resolve() if opts.run_dir else run_dir(build_dir, recipe, target)
        # one writer per run folder; torch's, onnxruntime's and onnx2tf's temporary files in the build dir
        with run_lock.hold(out_dir, enabled=writer), proc.temporary_files_in(build_dir / "tmp"):
            return _run(recipe, target, opts, threads, out_dir, Cache(build_dir / "cache", scratch), writer)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(recipe: Config, target: Config, opts: RunOptions, threads: int, out_dir: Path, cache: Cache,
         writer: bool) -> Path:
    last_training = max((i for i, s in enumerate(STAGES) if s.trains), default=-1)
    out_dir.mkdir(parents=True, exist_ok=True)
    if writer:  # a report from an earlier run must never sit beside this run's manifest
        for stale in ("report.json", "report.md", "report.png"):
            (out_dir / stale).unlink(missing_ok=True)
    outputs: dict[str, StageOutput] = {}
    keys: dict[str, str] = {}
    records: list[dict] = []
    manifest = {
        "schema": "phone-pipeline/manifest/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipe": {"name": recipe.name, "path": str(recipe.path), "sha256": sha256_file(recipe.path),
                   "settings": recipe.data},
        "target": {"name": target.name, "path": str(target.path), "sha256": sha256_file(target.path),
                   "settings": target.data},
        "host": _host_info(threads),
        "tools": tool_versions(),
        "options": {"no_gates": opts.no_gates, "force": opts.force, "from": opts.from_stage, "only": list(opts.only),
                    "overrides": opts.overrides or {}},
        "stages": records,
        "run_dir": str(out_dir),
    }
    gate_failure: GateError | None = None
    # A phone target: make sure the device answers before the first stage that does work, not after it.
    device_check_due = writer and target.data["device"]["kind"] == "adb" and (not opts.only or "on_device" in opts.only)
    order = {name: i for i, name in enumerate(stage_names())}
    pending: dict[str, tuple[Stage, str, Path, Future]] = {}  # background stages still running
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage")

    def failed(stage: Stage, ctx_dir: Path, exc: BaseException) -> NoReturn:
        """Clean up after a stage that raised, and raise again (a bug as a StageCrash)."""
        if stage.cached:
            cache.discard(ctx_dir)
        manifest["failed_stage"] = stage.name
        if writer:
            atomic_write_json(out_dir / "manifest.json", manifest)
        if isinstance(exc, Exception) and not isinstance(exc, UserError):
            raise StageCrash(stage.name) from exc  # a bug: the CLI logs the traceback, prints one line
        raise exc

    def finish(stage: Stage, key: str, ctx_dir: Path, produced: StageOutput, seconds: float) -> None:
        outputs[stage.name] = cache.commit(stage.name, key, ctx_dir, produced) if stage.cached else produced
        skipped = outputs[stage.name].data.get("skipped")
        if skipped:
            log.info("[%s] skipped: %s", stage.name, skipped)
        else:
            log.info("[%s] done in %.1f s", stage.name, seconds)
        records.append(_record(stage, key, outputs[stage.name], False, seconds))
        records.sort(key=lambda r: order[r["name"]])

    def join(names) -> None:
        """Wait for the background stages among `names` and record them."""
        for name in [n for n in names if n in pending]:
            stage, key, ctx_dir, future = pending.pop(name)
            try:
                produced, seconds = future.result()
            except BaseException as exc:
                failed(stage, ctx_dir, exc)
            finish(stage, key, ctx_dir, produced, seconds)

    def timed(stage: Stage, ctx: Context) -> tuple[StageOutput, float]:
        start = time.perf_counter()
        return stage.run(ctx), time.perf_counter() - start

    try:
        for index, stage in enumerate(STAGES):
            if not writer and index > last_training:
                break  # other torchrun ranks only help train; rank 0 converts, measures and writes
            join(stage.needs)
            settings = stage.settings(recipe, target)
            key = stage_key(stage, settings, {n: keys[n] for n in stage.needs})
            keys[stage.name] = key
            inputs = {n: outputs[n] for n in stage.needs}
            selected = not opts.only or stage.name in opts.only
            cached = None if (_forced(stage, opts) and selected) or not stage.cached else cache.load(stage.name, key)
            if cached is None and not selected:
                if opts.only and stage_names().index(stage.name) > max(stage_names().index(n) for n in opts.only):
                    break
                raise UserError(f"--only {','.join(opts.only)}: stage {stage.name!r} has no cached result for "
                                "these settings; run without --only first")
            if cached is not None:
                outputs[stage.name] = cached
                log.info("[%s] cached (%s)", stage.name, key[:12])
                records.append(_record(stage, key, cached, True, 0.0))
                records.sort(key=lambda r: order[r["name"]])
            else:
                if device_check_due:
                    device_check_due = False
                    if stage.name != "on_device":  # that stage reports an unreachable device itself
                        check_reachable(target.name, target.data["device"])
                ctx_dir = cache.new_folder(stage.name, key) if stage.cached else out_dir
                ctx = Context(recipe, target, inputs, ctx_dir, threads, log.getChild(stage.name),
                              {"no_gates": opts.no_gates, "manifest": manifest})
                if stage.background and writer:
                    log.info("[%s] running in the background: %s", stage.name, stage.produces)
                    pending[stage.name] = (stage, key, ctx_dir, background.submit(timed, stage, ctx))
                    continue
                log.info("[%s] running: %s", stage.name, stage.produces)
                try:
                    produced, seconds = timed(stage, ctx)
                except BaseException as exc:
                    _settle(pending, cache)
                    failed(stage, ctx_dir, exc)
                finish(stage, key, ctx_dir, produced, seconds)
            if stage.trains:
                distributed.barrier()  # every rank sees the same cache before deciding on the next stage
            if not writer:
                continue
            atomic_write_json(out_dir / "manifest.json", manifest)
            violations = outputs[stage.name].data.get("gate_violations", [])
            if violations and opts.explain and stage.name == "evaluate":
                _explain(out_dir, violations, recipe)
            if violations and not opts.no_gates and gate_failure is None:
                more = f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""
                gate_failure = GateError(f"{violations[0]}{more}; rerun with --no-gates to finish the report anyway")
                break
        join(list(pending))
    except BaseException:
        _settle(pending, cache)
        raise
    finally:
        background.shutdown(wait=True)
    if writer:
        atomic_write_json(out_dir / "manifest.json", manifest)
    if gate_failure is not None:
        report.write(out_dir, manifest)  # what was measured up to the gate, with the violations marked
        raise gate_failure
    return out_dir


def _settle(pending: dict, cache: Cache) -> None:
    """After a failure: wait for the background stages to end, then discard what they made (nothing of a stage
    that did not finish its run may reach the cache)."""
    for stage, _key, ctx_dir, future in pending.values():
        try:
            future.result()
        except BaseException:  # noqa: BLE001, S110 - the failure being raised is the one the user sees
            pass
        if stage.cached:
            cache.discard(ctx_dir)
    pending.clear()


def _explain(out_dir: Path, violations: list[str], recipe: Config) -> None:
    """Layer-by-layer pages of the artifacts that failed an evaluate gate; a page that cannot be made is a warning."""
    from pipeline.debug import debug

    # a pruned float model's accuracy drop is the pruning's, not a conversion's: no layer page explains it
    float_limits = ("(prune.max_accuracy_drop)", "(decompose.max_accuracy_drop)")
    wanted = [v.split(":")[0] for v in violations if not v.endswith(float_limits)]
    for name in dict.fromkeys(n for n in wanted if not n.startswith("torch-")):
        try:
            page = debug(out_dir, name, recipe=recipe)
        except Exception as exc:  # the gate's own message is what the user must see; the page is a help
            log.warning("debug %s: no layer-by-layer page: %s", name, str(exc).splitlines()[0][:200] if str(exc)
                        else type(exc).__name__)
            continue
        log.info("debug %s: layer by layer in %s", name, page)


def _record(stage: Stage, key: str, out: StageOutput, cached: bool, seconds: float) -> dict:
    return {
        "name": stage.name,
        "key": key,
        "cached": cached,
        "seconds": round(seconds, 2),
        "artifacts": [a.to_dict() for a in out.artifacts],
        "data": out.data,
    }

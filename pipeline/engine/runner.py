"""Compose the stages for a recipe and a target: plan (each stage's key and what will happen to it), then execute the
plan (run what changed, reuse what is cached, record the manifest).

    plan = make_plan(recipe, target, RunOptions(), Cache(Path("build/cache")))
    print(plan.describe())          # `phone-pipeline run --dry-run`
    run(recipe, target, RunOptions())   # plans, then executes under the run folder's lock
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from pipeline.artifacts.artifact import atomic_write_json, sha256_file, tool_versions
from pipeline.core import log as log_setup
from pipeline.core import proc
from pipeline.core.errors import GateError, StageCrash, UserError
from pipeline.core.names import run_folder_name
from pipeline.data import array_cache
from pipeline.devices import check_reachable
from pipeline.engine import run_lock
from pipeline.engine.cache import Cache, stage_key
from pipeline.recipe.config import Config
from pipeline.report import run_report
from pipeline.stages import STAGES, stage_names
from pipeline.stages.contract import Context, RunFlags, Stage, StageOutput
from pipeline.training import distributed, thread_tuner

log = logging.getLogger("pipeline")

# What the run does to a stage: reuse its cache entry, run it here, run it in a thread beside the next stages, or
# rebuild it (a stage that is never cached, the report).
CACHED, RUN, BACKGROUND, REBUILD = "cached", "run", "background", "rebuild"


@dataclass(frozen=True)
class RunOptions:
    build_dir: Path = Path("build")
    from_stage: str | None = None  # rerun this stage and every later one
    only: tuple[str, ...] = ()  # run just these; earlier ones must be cached
    force: bool = False
    no_gates: bool = False
    threads: int | None = None  # overrides the target's compute threads
    # Called with the run folder, the violations and the recipe when an evaluate gate fails (the layer-by-layer
    # pages of `phone-pipeline debug`, which the tools above the engine supply); None: no pages.
    explain: Callable[[Path, list[str], Config], None] | None = None
    run_dir: Path | None = None  # where manifest and report go (default: BUILD_DIR/runs/<recipe>__<target>)
    overrides: dict | None = None  # what `--set` / `--target-set` changed, recorded in the manifest

    @property
    def flags(self) -> RunFlags:
        return RunFlags(no_gates=self.no_gates, force=self.force, from_stage=self.from_stage)


@dataclass(frozen=True)
class Step:
    """One stage in a plan: its cache key, what the run will do with it and why, and its own reason to do nothing
    (the stage still records that reason) when it can tell beforehand."""

    stage: Stage
    key: str
    action: str  # CACHED, RUN, BACKGROUND or REBUILD
    why: str
    skip: str | None = None


@dataclass(frozen=True)
class Plan:
    """What a run of `recipe` on `target` will do, stage by stage; nothing has run or been written yet."""

    recipe: Config
    target: Config
    options: RunOptions
    threads: int
    out_dir: Path
    steps: tuple[Step, ...]

    def describe(self) -> str:
        """The plan as a table, for `phone-pipeline run --dry-run`."""
        width = max(len(s.stage.name) for s in self.steps) if self.steps else 5
        auto = compute_threads(self.target, self.options) == 0
        threads = "1 thread (training picks 1 or every core as it goes)" if auto else f"{self.threads} thread(s)"
        lines = [f"plan: recipe {self.recipe.name} ({self.recipe.path}) on target {self.target.name}; run folder "
                 f"{self.out_dir}; {threads}",
                 f"  {'stage':<{width}}  {'action':<10}  {'key':<12}  why"]
        for s in self.steps:
            note = s.why + (f"; the stage will do nothing: {s.skip}" if s.skip else "")
            lines.append(f"  {s.stage.name:<{width}}  {s.action:<10}  {s.key[:12]:<12}  {note}")
        left = [st.name for st in STAGES[len(self.steps):]]
        if left:
            lines.append(f"  not reached: {', '.join(left)} (after the last --only stage, or torchrun ranks but 0)")
        return "\n".join(lines)


def run_dir(build_dir: Path, recipe: Config, target: Config) -> Path:
    return build_dir / "runs" / run_folder_name(recipe.name, target.name)


def _check_stage_names(opts: RunOptions) -> None:
    names = stage_names()
    for n in ([opts.from_stage] if opts.from_stage else []) + list(opts.only):
        if n not in names:
            raise UserError(f"unknown stage {n!r}: the stages are {', '.join(names)}")


def compute_threads(target: Config, opts: RunOptions) -> int:
    """The torch threads of this run (0 in the target: training tunes its own, every other stage runs on 1)."""
    return opts.threads or target.data["compute"]["threads"]


def make_plan(recipe: Config, target: Config, opts: RunOptions, cache: Cache, writer: bool = True) -> Plan:
    """Each stage's key and action, in run order. Reads the cache's index but changes nothing; raises UserError for
    options that cannot be met (an unknown stage, `--only` on a stage whose inputs are not cached)."""
    _check_stage_names(opts)
    names = stage_names()
    last_training = max((i for i, s in enumerate(STAGES) if s.trains), default=-1)
    last_only = max((names.index(n) for n in opts.only), default=len(names))
    keys: dict[str, str] = {}
    steps: list[Step] = []
    for index, stage in enumerate(STAGES):
        if not writer and index > last_training:
            break  # other torchrun ranks only help train; rank 0 converts, measures and writes
        key = stage_key(stage, stage.settings(recipe, target), {n: keys[n] for n in stage.needs})
        keys[stage.name] = key
        selected = not opts.only or stage.name in opts.only
        if not stage.cached:
            action, why = (REBUILD, "rebuilt every run") if selected else (None, "")
        elif selected and opts.flags.reruns(stage.name, names):
            action, why = RUN, "--force" if opts.force else f"--from {opts.from_stage}"
        elif cache.has(stage.name, key):
            action, why = CACHED, "cache entry for this key"
        else:
            action, why = (RUN, "no cache entry for this key") if selected else (None, "")
        if action is None:  # not selected by --only, and nothing cached to reuse
            if index > last_only:
                break
            raise UserError(f"--only {','.join(opts.only)}: stage {stage.name!r} has no cached result for "
                            "these settings; run without --only first")
        if action == RUN and stage.background and writer:
            action = BACKGROUND
        steps.append(Step(stage, key, action, why, stage.skip(recipe, target)))
    out_dir = opts.run_dir.resolve() if opts.run_dir else run_dir(opts.build_dir.resolve(), recipe, target)
    return Plan(recipe, target, opts, compute_threads(target, opts) or 1, out_dir, tuple(steps))


def _cpu_model() -> str | None:
    """The CPU's model name as Linux reports it (platform.processor() is often just the architecture)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _host_info(threads: int) -> dict:
    return {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "compute_threads": threads,
        "training_threads": thread_tuner.describe() or threads,
    }


def dry_run(recipe: Config, target: Config, opts: RunOptions) -> Plan:
    """The plan of a run, computed without running, locking or writing anything."""
    return make_plan(recipe, target, opts, Cache(opts.build_dir.resolve() / "cache", read_only=True))


def run(recipe: Config, target: Config, opts: RunOptions) -> Path:
    """Run the pipeline; returns the run folder (manifest.json, report.*). Raises GateError on a failed gate."""
    _check_stage_names(opts)
    threads = compute_threads(target, opts)
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
        cache = Cache(build_dir / "cache", scratch)
        plan = make_plan(recipe, target, opts, cache, writer)
        # one writer per run folder; torch's, onnxruntime's and onnx2tf's temporary files in the build dir;
        # third-party noise in the run's log file
        with run_lock.hold(plan.out_dir, enabled=writer), proc.temporary_files_in(build_dir / "tmp"):
            with log_setup.run_file(plan.out_dir / log_setup.RUN_LOG, enabled=writer):
                return Execution(plan, cache, writer).execute()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


class Execution:
    """Carries out a plan: owns the stage outputs, the manifest being written, and the background stages still
    running."""

    def __init__(self, plan: Plan, cache: Cache, writer: bool):
        self.plan, self.cache, self.writer = plan, cache, writer
        self.outputs: dict[str, StageOutput] = {}
        self.records: list[dict] = []
        self.pending: dict[str, tuple[Step, Path, Future]] = {}
        self.order = {name: i for i, name in enumerate(stage_names())}
        self.manifest = _new_manifest(plan, self.records)
        # A phone target: make sure the device answers before the first stage that does work, not after it.
        opts = plan.options
        self.device_check_due = (writer and plan.target.data["device"]["kind"] == "adb"
                                 and (not opts.only or "on_device" in opts.only))

    def execute(self) -> Path:
        out_dir = self.plan.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        if self.writer:  # a report from an earlier run must never sit beside this run's manifest
            for stale in ("report.json", "report.md", "report.png"):
                (out_dir / stale).unlink(missing_ok=True)
        gate_failure: GateError | None = None
        background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage")
        try:
            for step in self.plan.steps:
                self._join(step.stage.needs)
                if not self._take(step, background):
                    continue  # running in the background
                if step.stage.trains:
                    distributed.barrier()  # every rank sees the same cache before deciding on the next stage
                if not self.writer:
                    continue
                atomic_write_json(out_dir / "manifest.json", self.manifest)
                gate_failure = self._gates(step.stage)
                if gate_failure is not None:
                    break
            self._join(list(self.pending))
        except BaseException:
            self._settle()
            raise
        finally:
            background.shutdown(wait=True)
        if self.writer:
            atomic_write_json(out_dir / "manifest.json", self.manifest)
        if gate_failure is not None:
            run_report.write(out_dir, self.manifest)  # what was measured up to the gate, with the violations marked
            raise gate_failure
        return out_dir

    def _take(self, step: Step, background: ThreadPoolExecutor) -> bool:
        """Reuse, run or start one stage; False when it was started in the background."""
        stage = step.stage
        if step.action == CACHED:
            cached = self.cache.load(stage.name, step.key)
            if cached is not None:
                self.outputs[stage.name] = cached
                log.info("[%s] cached (%s)", stage.name, step.key[:12])
                self._record(stage, step.key, cached, True, 0.0)
                return True
            if self.plan.options.only and stage.name not in self.plan.options.only:  # damaged since the plan
                raise UserError(f"--only {','.join(self.plan.options.only)}: stage {stage.name!r} has no cached "
                                "result for these settings; run without --only first")
        if self.device_check_due:
            self.device_check_due = False
            if stage.name != "on_device":  # that stage reports an unreachable device itself
                check_reachable(self.plan.target.name, self.plan.target.data["device"])
        ctx_dir = self.cache.new_folder(stage.name, step.key) if stage.cached else self.plan.out_dir
        ctx = Context(self.plan.recipe, self.plan.target, {n: self.outputs[n] for n in stage.needs}, ctx_dir,
                      self.plan.threads, log.getChild(stage.name), self.plan.options.flags, self.manifest)
        if step.action == BACKGROUND:
            log.info("[%s] running in the background: %s", stage.name, stage.produces)
            self.pending[stage.name] = (step, ctx_dir, background.submit(_timed, stage, ctx))
            return False
        log.info("[%s] running: %s", stage.name, stage.produces)
        try:
            produced, seconds = _timed(stage, ctx)
        except BaseException as exc:
            self._settle()
            self._failed(stage, ctx_dir, exc)
        self._finish(step, ctx_dir, produced, seconds)
        return True

    def _gates(self, stage: Stage) -> GateError | None:
        """The gate failure that stops the run after `stage`, if any (with --no-gates: none)."""
        violations = list(self.outputs[stage.name].gate_violations)
        opts = self.plan.options
        if violations and opts.explain is not None and stage.name == "evaluate":
            opts.explain(self.plan.out_dir, violations, self.plan.recipe)
        if not violations or opts.no_gates:
            return None
        more = f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""
        return GateError(f"{violations[0]}{more}; rerun with --no-gates to finish the report anyway")

    def _finish(self, step: Step, ctx_dir: Path, produced: StageOutput, seconds: float) -> None:
        stage = step.stage
        out = self.cache.commit(stage.name, step.key, ctx_dir, produced) if stage.cached else produced
        self.outputs[stage.name] = out
        if out.skipped:
            log.info("[%s] skipped: %s", stage.name, out.skipped)
        else:
            log.info("[%s] done in %.1f s", stage.name, seconds)
        self._record(stage, step.key, out, False, seconds)

    def _record(self, stage: Stage, key: str, out: StageOutput, cached: bool, seconds: float) -> None:
        self.records.append({"name": stage.name, "key": key, "cached": cached, "seconds": round(seconds, 2),
                             "artifacts": [a.to_dict() for a in out.artifacts], "data": out.data})
        self.records.sort(key=lambda r: self.order[r["name"]])

    def _join(self, names) -> None:
        """Wait for the background stages among `names` and record them."""
        for name in [n for n in names if n in self.pending]:
            step, ctx_dir, future = self.pending.pop(name)
            try:
                produced, seconds = future.result()
            except BaseException as exc:
                self._failed(step.stage, ctx_dir, exc)
            self._finish(step, ctx_dir, produced, seconds)

    def _failed(self, stage: Stage, ctx_dir: Path, exc: BaseException) -> NoReturn:
        """Clean up after a stage that raised, and raise again (a bug as a StageCrash)."""
        if stage.cached:
            self.cache.discard(ctx_dir)
        self.manifest["failed_stage"] = stage.name
        if self.writer:
            atomic_write_json(self.plan.out_dir / "manifest.json", self.manifest)
        if isinstance(exc, Exception) and not isinstance(exc, UserError):
            raise StageCrash(stage.name) from exc  # a bug: the CLI logs the traceback, prints one line
        raise exc

    def _settle(self) -> None:
        """After a failure: wait for the background stages to end, then discard what they made (nothing of a stage
        that did not finish its run may reach the cache)."""
        for step, ctx_dir, future in self.pending.values():
            try:
                future.result()
            except BaseException:  # noqa: BLE001, S110 - the failure being raised is the one the user sees
                pass
            if step.stage.cached:
                self.cache.discard(ctx_dir)
        self.pending.clear()


def _timed(stage: Stage, ctx: Context) -> tuple[StageOutput, float]:
    start = time.perf_counter()
    return stage.run(ctx), time.perf_counter() - start


def _new_manifest(plan: Plan, records: list[dict]) -> dict:
    recipe, target, opts = plan.recipe, plan.target, plan.options
    return {
        "schema": "phone-pipeline/manifest/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipe": {"name": recipe.name, "path": str(recipe.path), "sha256": sha256_file(recipe.path),
                   "settings": recipe.data},
        "target": {"name": target.name, "path": str(target.path), "sha256": sha256_file(target.path),
                   "settings": target.data},
        "host": _host_info(plan.threads),
        "tools": tool_versions(),
        "options": {"no_gates": opts.no_gates, "force": opts.force, "from": opts.from_stage, "only": list(opts.only),
                    "overrides": opts.overrides or {}},
        "stages": records,
        "run_dir": str(plan.out_dir),
    }

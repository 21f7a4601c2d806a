"""`phone-pipeline search`: the best compression settings under a latency budget, measured on the target.

Each trial is an ordinary pipeline run of the recipe with a few settings changed (`run --set`), so trials share
every cached stage they have in common: one training for all of them. Optuna proposes the settings (space.py,
study.py); trial.py runs and reads one; choice.py picks what ships; outputs.py writes search.json, search.md and
front.png under build/search/<recipe>__<target>/. The chosen trial is then re-run on the whole test set with the
target's full benchmark, in chosen/run, which is what `release --search` bundles.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_json
from pipeline.core import bounded_json
from pipeline.core.errors import UserError
from pipeline.core.names import run_folder_name
from pipeline.core.proc import last_line, python_module, start
from pipeline.core.proc import run as run_process
from pipeline.recipe.config import Config
from pipeline.search import choice, outputs
from pipeline.search import space as search_space
from pipeline.search import trial as trial_run
from pipeline.search.study import SearchJob, default_storage, open_study, work

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class SearchOptions:
    build_dir: Path = Path("build")
    workers: int = 1
    trials: int | None = None  # overrides search.trials
    storage: str | None = None  # a database URL shared by workers on several machines
    worker_index: int | None = None  # set in the worker processes the first one starts


def search_dir(build_dir: Path, recipe: Config, target: Config) -> Path:
    return build_dir / "search" / run_folder_name(recipe.name, target.name)


def make_job(recipe: Config, target: Config, opts: SearchOptions) -> SearchJob:
    space = dict(recipe.data["search"])
    if opts.trials:
        space["trials"] = opts.trials
    build_dir = opts.build_dir.resolve()
    directory = search_dir(build_dir, recipe, target)
    directory.mkdir(parents=True, exist_ok=True)
    # two workers on two cores: one torch thread each, so a trial's training does not fight the other's timing
    threads = max(1, (os.cpu_count() or 1) // opts.workers) if opts.workers > 1 else None
    return SearchJob(recipe.path.resolve(), target.path.resolve(), directory.name, space, directory,
                     build_dir, opts.storage or default_storage(directory), threads)


def _worker_command(job: SearchJob, opts: SearchOptions, index: int) -> list[str]:
    return python_module("pipeline", "search", "--recipe", str(job.recipe_path), "--target", str(job.target_path),
                         "--build-dir", str(job.build_dir), "--storage", job.storage_url,
                         "--trials", str(job.space["trials"]), "--workers", str(opts.workers),
                         "--worker-index", str(index))


def _warm_shared_stages(job: SearchJob) -> None:
    """Train once before the workers start, so they do not both train the same model."""
    cmd = python_module("pipeline", "run", "--recipe", str(job.recipe_path), "--target", str(job.target_path),
                        "--build-dir", str(job.build_dir), "--only", "train", "--run-dir",
                        str(job.directory / "warmup"))
    proc = run_process(cmd, what="search: training the shared model", timeout=trial_run.TRIAL_TIMEOUT_S,
                       check=False)
    if proc.returncode != 0:
        line = last_line(proc.stderr or proc.stdout)
        raise UserError(f"search: the shared training run failed: {line}")


def run_search(recipe: Config, target: Config, opts: SearchOptions) -> Path:
    """Run (or continue) the search; returns the search folder. Raises UserError when no trial meets the gates."""
    job = make_job(recipe, target, opts)
    if opts.worker_index is not None:  # a helper process: trials only, the first process summarises
        work(job, opts.worker_index)
        return job.directory
    open_study(job)  # refuse a study of other settings before anything runs
    started = time.monotonic()
    _warm_shared_stages(job)
    helpers = [start(_worker_command(job, opts, i), what=f"search worker {i}", log=job.directory / f"worker-{i}.log")
               for i in range(1, opts.workers)]
    log.info("[search] %d worker(s), %d trial(s) in all, study %s", opts.workers, job.space["trials"],
             job.storage_url)
    ran = work(job, 0)
    for i, helper in enumerate(helpers, start=1):
        if helper.wait() != 0:
            log.warning("[search] worker %d ended with exit %d: %s", i, helper.returncode,
                        last_line((job.directory / f"worker-{i}.log").read_bytes()))
    return summarise(job, opts, recipe, target, time.monotonic() - started, ran)


def _records(job: SearchJob, study) -> tuple[list[dict], list[int]]:
    """Each counted trial's record (trials/<n>.json), and the numbers of trials a dead worker left."""
    from optuna.trial import TrialState

    records, interrupted = [], []
    for t in study.get_trials(deepcopy=False):
        path = job.directory / "trials" / f"{t.number:03d}.json"
        if t.state == TrialState.FAIL and "outcome" not in t.user_attrs:
            interrupted.append(t.number)
        elif t.state in (TrialState.COMPLETE, TrialState.FAIL) and path.is_file():
            records.append(bounded_json.load(path, "search trial record"))
    return records, interrupted


def summarise(job: SearchJob, opts: SearchOptions, recipe: Config, target: Config, seconds: float,
              ran: int) -> Path:
    study = open_study(job)
    records, interrupted = _records(job, study)
    front = sorted(t.number for t in study.best_trials if "repeat_of" not in t.user_attrs)
    repeats = [{"number": t.number, "repeat_of": t.user_attrs["repeat_of"]}
               for t in study.get_trials(deepcopy=False) if "repeat_of" in t.user_attrs]
    chosen, why = choice.choose(records, job.space)
    # each trial measures its own runtime's artifact: "host (executorch), host (litert)"
    measured_on = ", ".join(sorted({r["measured"]["measured_on"] for r in records if r["state"] == "complete"}))
    measured_on = measured_on or "the target"
    info = {"recipe": recipe.name, "target": target.name, "storage": job.storage_url, "space": job.space,
            "measured_on": measured_on, "interrupted": interrupted, "repeats": repeats}
    wall = {"seconds": seconds, "workers": opts.workers, "trials_run_now": ran, "final_seconds": 0.0}
    if chosen is None:
        why = choice.best_found_line(records, job.space)
        outputs.write(job.directory, outputs.document(info, records, front, None, why, None, wall))
        raise UserError(f"search {job.name}: {why}; see {job.directory / 'search.md'}")
    final_start = time.monotonic()
    final = final_run(job, chosen)
    wall["final_seconds"] = time.monotonic() - final_start
    outputs.write(job.directory, outputs.document(info, records, front, chosen, why, final, wall))
    return job.directory


def final_run(job: SearchJob, chosen: dict) -> dict:
    """The chosen trial again, on the whole test set with the target's own benchmark settings (no trial slice)."""
    from pipeline.search.study import gate_line, gate_values

    cand = search_space.candidate(chosen["params"], job.space)
    folder = job.directory / "chosen"
    folder.mkdir(parents=True, exist_ok=True)
    cmd = trial_run.command(job.recipe_path, job.target_path, cand, {}, job.build_dir, folder / "run", None)
    log.info("[search] final: trial %d on the whole test set, full benchmark", chosen["number"])
    finished, line, seconds = trial_run.run(cmd, folder / "log.txt", None)
    out = {"trial": chosen["number"], "params": chosen["params"], "recipe_set": cand.recipe_set,
           "target_set": cand.target_set, "artifact": cand.artifact, "seconds": round(seconds, 1),
           "run_dir": str(folder / "run")}
    if not finished:
        return {**out, "line": line}
    try:
        measured = trial_run.measurements(folder / "run", cand)
    except (ValueError, KeyError, TypeError) as exc:
        return {**out, "line": str(exc)}
    gates = gate_values(measured, job.space)
    failed = [k for k, v in gates.items() if v > 0]
    out.update({"measured": measured, "gates": gates, "failed_gates": failed,
                "line": gate_line(measured, failed, job.space) if failed else ""})
    atomic_write_json(folder / "final.json", out)
    return out


def chosen_run(build_dir: Path, recipe: Config, target: Config) -> tuple[dict, Path]:
    """For `release --search`: the final record of the search of this recipe and target, and its run folder."""
    directory = search_dir(build_dir.resolve(), recipe, target)
    path = directory / "search.json"
    if not path.is_file():
        raise UserError(f"release --search: {path} does not exist; run `phone-pipeline search --recipe "
                        f"{recipe.name} --target {target.name}` first")
    doc = bounded_json.load(path, "search.json")
    final = doc.get("final") or {}
    if doc.get("chosen") is None or not final.get("measured"):
        raise UserError(f"release --search: {path}: the search chose no trial with a finished final run "
                        f"({doc.get('why') or final.get('line') or 'see search.md'})")
    return final, Path(final["run_dir"])


def overrides_of(final: dict) -> tuple[dict, dict]:
    """The recipe and target overrides that rebuild the chosen trial's final run (JSON round trip: plain data)."""
    return json.loads(json.dumps(final["recipe_set"])), json.loads(json.dumps(final["target_set"]))

"""The Optuna study behind `phone-pipeline search`: storage, sampler, and the loop each worker runs.

The study lives in a database (SQLite under the search folder by default, any SQLAlchemy URL with `--storage`), so
a killed search continues where it stopped and several workers (processes here, or other machines pointed at the
same URL) share one study. A running trial records a heartbeat; one silent for three heartbeats belonged to a dead
worker, and Optuna's stale-trial callback queues its settings to run again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.artifacts.artifact import atomic_write_json
from pipeline.core import bounded_json
from pipeline.core.errors import UserError
from pipeline.search import space as search_space
from pipeline.search import trial as trial_run

log = logging.getLogger("pipeline")

OBJECTIVES = ("accuracy", "p50_ms")  # maximise accuracy (points), minimise measured p50 latency (ms)


@dataclass(frozen=True)
class SearchJob:
    """Everything a worker needs: which recipe and target, the [search] settings, where things go."""

    recipe_path: Path
    target_path: Path
    name: str  # "<recipe>__<target>": the study's name and the search folder's
    space: dict[str, Any]
    directory: Path  # build/search/<name>
    build_dir: Path
    storage_url: str
    threads: int | None  # torch threads per trial (two workers on two cores: one each)


def default_storage(directory: Path) -> str:
    return f"sqlite:///{directory / 'study.db'}"


def _storage(job: SearchJob):
    import optuna

    # heartbeats and stale-trial retries are marked experimental in Optuna 5.1; the pin in the lock holds them still
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    heartbeat = job.space["heartbeat_seconds"]
    kwargs = {"connect_args": {"timeout": 120}} if job.storage_url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(
            job.storage_url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
    except Exception as exc:  # SQLAlchemy's errors for a URL it cannot open: a user mistake
        raise UserError(f"search: --storage {job.storage_url}: cannot open the study database "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None


def _sampler(space: dict, worker: int):
    import optuna

    seed = space["seed"] + worker  # one seed for all workers would make them ask for the same first trials
    if space["sampler"] == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(10, space["trials"] // 2)))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, space["trials"] // 3)),
                                      multivariate=True, group=True)


def open_study(job: SearchJob, worker: int = 0):
    """Create or load the study; refuses one made with other [search] settings (its trials would not compare)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=job.name, storage=_storage(job), sampler=_sampler(job.space, worker),
                                directions=["maximize", "minimize"], load_if_exists=True)
    recorded = study.user_attrs.get("space")
    mine = json.loads(json.dumps(_comparable(job.space)))
    if recorded is None:
        study.set_user_attr("space", mine)
        study.set_user_attr("objectives", list(OBJECTIVES))
    elif recorded != mine:
        changed = sorted(k for k in set(recorded) | set(mine) if recorded.get(k) != mine.get(k))
        raise UserError(f"search: the study {job.name} in {job.storage_url} was made with other [search] settings "
                        f"({', '.join('search.' + k for k in changed)}); delete {job.directory} or pass another "
                        "--storage to start a new one")
    return study


def _comparable(space: dict) -> dict:
    """The settings that change what a trial means; the trial count and heartbeat may change between runs."""
    return {k: v for k, v in space.items() if k not in ("trials", "heartbeat_seconds")}


@contextlib.contextmanager
def _ask_lock(directory: Path):
    """Local workers count and ask under one lock, so the study gets exactly `trials` trials. Workers on other
    machines share only the database and may start up to one extra trial each."""
    with open(directory / "ask.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _heartbeat(storage, trial_id: int, every: int):
    """Record the trial's heartbeat every `every` seconds while it runs (a killed worker stops beating)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):  # a busy database misses one beat; the grace period is 3 beats
                storage.record_heartbeat(trial_id)

    storage.record_heartbeat(trial_id)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def counted(trials: list) -> list:
    """Trials that count towards `search.trials`: finished ones and running ones (not those a dead worker left)."""
    from optuna.trial import TrialState

    return [t for t in trials if "repeat_of" not in t.user_attrs
            and (t.state in (TrialState.COMPLETE, TrialState.RUNNING)
                 or (t.state == TrialState.FAIL and "outcome" in t.user_attrs))]


# A sampler over a space of categories and stepped ranges proposes settings it has measured already (TPE did so for
# 2 of 12 trials of the default search). Such a proposal is answered from the earlier trial and does not count; after
# a few in a row the worker asks a random sampler once, and after many in a row the space is taken as exhausted.
EXPLORE_AFTER_REPEATS = 3
STOP_AFTER_REPEATS = 25


def earlier_same(trials: list, params: dict[str, Any]):
    """Of `trials` (read before this one was asked), the finished, counted one with these settings, or None."""
    from optuna.trial import TrialState

    return next((t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.params == params
                 and "outcome" in t.user_attrs and "repeat_of" not in t.user_attrs), None)


def _answer_repeat(job: SearchJob, study, trial, earlier) -> None:
    """Tell the study what the earlier trial of these settings measured; nothing is built or run again."""
    from optuna.trial import TrialState

    trial.set_user_attr("repeat_of", earlier.number)
    trial.set_user_attr("outcome", earlier.user_attrs["outcome"])
    record = job.directory / "trials" / f"{earlier.number:03d}.json"
    if earlier.state == TrialState.COMPLETE:
        gates = bounded_json.load(record, "search trial record")["gates"] if record.is_file() else {}
        for key, value in gates.items():
            trial.set_constraint(key, value)
        study.tell(trial, list(earlier.values))
    else:
        study.tell(trial, state=TrialState.FAIL)
    log.info("[search] trial %d: the settings of trial %d again; its result answers, not counted", trial.number,
             earlier.number)


def work(job: SearchJob, worker: int) -> int:
    """Run trials until the study has `trials` of them; returns how many this worker ran."""
    import optuna
    from optuna.trial import TrialState

    study = open_study(job, worker)
    guided = study.sampler
    ran = repeats = 0
    while True:
        with _ask_lock(job.directory):
            optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            trial = None
            if len(counted(trials)) < job.space["trials"]:
                explore = repeats and repeats % EXPLORE_AFTER_REPEATS == 0
                study.sampler = optuna.samplers.RandomSampler(seed=job.space["seed"] + worker + repeats) \
                    if explore else guided
                trial = study.ask()
                trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
                params = search_space.suggest(trial, job.space)
                earlier = earlier_same(trials, trial.params)
                if earlier is not None:
                    _answer_repeat(job, study, trial, earlier)
                    repeats += 1
                    if repeats >= STOP_AFTER_REPEATS:
                        log.warning("[search] worker %d: %d proposals in a row were settings already measured; the "
                                    "space holds no more, stopping with %d trial(s)", worker, repeats,
                                    len(counted(trials)))
                        return ran
                    continue
                repeats = 0
        if trial is None:
            if not any(t.state == TrialState.RUNNING for t in trials):
                return ran
            time.sleep(job.space["heartbeat_seconds"])  # another worker's trial, or a dead one going stale
            continue
        run_trial(job, study, trial, params)
        ran += 1


def run_trial(job: SearchJob, study, trial, params: dict[str, Any]) -> dict:
    """Build and measure one candidate (`params`, suggested for `trial`); record it in the study and as
    trials/<n>.json. Never raises for the trial's own failures: a crash or a missed gate is recorded with its line and
    the search goes on."""
    from optuna.trial import TrialState

    cand = search_space.candidate(params, job.space)
    folder = job.directory / "trials" / f"{trial.number:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    cmd = trial_run.command(job.recipe_path, job.target_path, cand, search_space.trial_target_set(job.space),
                            job.build_dir, folder / "run", job.threads)
    log.info("[search] trial %d: %s -> %s", trial.number, search_space.describe(params), cand.artifact)
    with _heartbeat(study._storage, trial._trial_id, job.space["heartbeat_seconds"]):
        finished, line, seconds = trial_run.run(cmd, folder / "log.txt", job.directory / "bench.lock")
    record: dict[str, Any] = {"number": trial.number, "params": params, "settings": search_space.describe(params),
                              "artifact": cand.artifact, "recipe_set": cand.recipe_set,
                              "target_set": {**cand.target_set, **search_space.trial_target_set(job.space)},
                              "seconds": round(seconds, 1), "worker": trial.user_attrs.get("worker"),
                              "log": str(folder / "log.txt")}
    measured = None
    if finished:
        try:
            measured = trial_run.measurements(folder / "run", cand)
        except (ValueError, KeyError, TypeError) as exc:
            finished, line = False, str(exc)
    if measured is None:
        record.update({"state": "fail", "outcome": "crash", "line": line})
        trial.set_user_attr("outcome", "crash")
        trial.set_user_attr("line", line[:500])
        study.tell(trial, state=TrialState.FAIL)
        log.warning("[search] trial %d failed: %s (log: %s)", trial.number, line, folder / "log.txt")
    else:
        gates = gate_values(measured, job.space)
        failed = [k for k, v in gates.items() if v > 0]
        record.update({"state": "complete", "outcome": "feasible" if not failed else "infeasible",
                       "measured": measured, "gates": gates, "failed_gates": failed,
                       "line": "" if not failed else gate_line(measured, failed, job.space)})
        for key, value in gates.items():
            trial.set_constraint(key, value)
        trial.set_user_attr("outcome", record["outcome"])
        trial.set_user_attr("measured", {k: measured[k] for k in ("artifact", "accuracy", "accuracy_drop", "p50_ms",
                                                                  "speedup", "measured_on")})
        study.tell(trial, [measured["accuracy"], measured["p50_ms"]])
        log.info("[search] trial %d: %s accuracy %.2f%% (drop %.2f), p50 %.4f ms (%.2fx over %s) on %s%s",
                 trial.number, cand.artifact, measured["accuracy"], measured["accuracy_drop"], measured["p50_ms"],
                 measured["speedup"], cand.baseline, measured["measured_on"],
                 f"; fails {', '.join(failed)}" if failed else "")
    atomic_write_json(job.directory / "trials" / f"{trial.number:03d}.json", record)
    return record


def gate_values(m: dict, space: dict) -> dict[str, float]:
    """Optuna constraints (<= 0 passes): accuracy drop, latency budget, speed-up, parity of the artifact."""
    gates = {"max_accuracy_drop": m["accuracy_drop"] - space["max_accuracy_drop"],
             "pipeline_gates": float(len(m["gate_violations"]))}
    if space["max_latency_ms"] > 0:
        gates["max_latency_ms"] = m["p50_ms"] - space["max_latency_ms"]
    if space["min_speedup"] > 0:
        gates["min_speedup"] = space["min_speedup"] - m["speedup"]
    return gates


def gate_line(m: dict, failed: list[str], space: dict) -> str:
    """Why a measured trial does not qualify, in the user's units."""
    why = {"max_accuracy_drop": f"accuracy drop {m['accuracy_drop']:.2f} > {space['max_accuracy_drop']} points",
           "pipeline_gates": f"the pipeline's gate: {'; '.join(m['gate_violations'])[:300]}",
           "max_latency_ms": f"p50 {m['p50_ms']:.4f} ms > {space['max_latency_ms']} ms",
           "min_speedup": f"speed-up {m['speedup']:.2f}x < {space['min_speedup']}x"}
    return "; ".join(why[k] for k in failed)

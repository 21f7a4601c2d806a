"""`phone-pipeline search` and the decompose stage on the reduced recipe, with the real stages, runtimes and Optuna.

The space is kept small so that `make test` can afford it: ExecuTorch fp32, decomposition on/off and its energy,
one benchmark round per trial. Every trial is still a full pipeline run measured on this host.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, cli, write_recipe

from pipeline.search import study

SEARCH = {"decompose.min_saving": "0.05", "search.runtimes": '["executorch"]', "search.precisions": '["fp32"]',
          "search.prune": "false", "search.energy": "[0.8, 0.95]", "search.trials": "3",
          "search.eval_samples": "200", "search.bench_runs": "10", "search.bench_rounds": "1",
          "search.heartbeat_seconds": "1", "search.max_accuracy_drop": "10.0"}


def _search(recipe: Path, target: Path, build: Path, *args: str) -> subprocess.CompletedProcess:
    return cli("search", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(build), *args)


def _study_states(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return [s for (s,) in con.execute("select state from trials order by number")]


@pytest.fixture(scope="module")
def two_workers(workspace: Path, test_target: Path) -> dict:
    recipe = write_recipe(workspace, "search2", **SEARCH)
    build = workspace / "build"
    start = time.monotonic()
    proc = _search(recipe, test_target, build, "--workers", "2")
    folder = build / "search" / "search2__test-host"
    return {"proc": proc, "folder": folder, "recipe": recipe, "build": build, "seconds": time.monotonic() - start,
            "doc": json.loads((folder / "search.json").read_text()) if proc.returncode == 0 else None}


def test_two_workers_write_one_consistent_study_and_a_front(two_workers):
    proc, folder, doc = two_workers["proc"], two_workers["folder"], two_workers["doc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("search.md")
    # exactly the asked-for count of distinct settings, none lost or doubled; repeated proposals are answered
    assert len(doc["trials"]) == 3 and len({json.dumps(r["params"], sort_keys=True) for r in doc["trials"]}) == 3
    assert _study_states(folder / "study.db") == ["COMPLETE"] * (3 + len(doc["repeats"]))
    assert len({r["worker"] for r in doc["trials"]}) == 2, "both workers ran trials"
    for r in doc["trials"]:
        m = r["measured"]
        assert m["artifact"] == r["artifact"] and m["p50_ms"] > 0 and 0 < m["accuracy"] <= 100
        assert json.loads((folder / "trials" / f"{r['number']:03d}.json").read_text()) == r
        assert m["eval_samples"] == 200 and m["bench_rounds"] == 1  # trial numbers come from the slice
    assert doc["front"] and set(doc["front"]) <= {r["number"] for r in doc["trials"]} and doc["chosen"] in doc["front"]
    assert (folder / "front.png").stat().st_size > 1000
    md = (folder / "search.md").read_text()
    assert f"| {doc['chosen']} **front** **chosen**" in md and "Final (whole test set" in md
    final = doc["final"]["measured"]
    assert final["eval_samples"] == 400  # the recipe's own test set, not the trial slice
    assert Path(doc["final"]["run_dir"], "report.json").is_file()


def test_decomposed_trials_keep_parity_through_the_pte_and_have_fewer_macs(two_workers):
    doc = two_workers["doc"]
    lowrank = [r for r in doc["trials"] if "energy" in r["params"]]
    plain = [r for r in doc["trials"] if "energy" not in r["params"]]
    if not lowrank or not plain:
        pytest.skip(f"the sampler drew {[r['params'] for r in doc['trials']]}: no decomposed/plain pair")
    for r in lowrank:
        assert r["artifact"] == "pte-lowrank-fp32"
        assert r["measured"]["gate_violations"] == [], r["measured"]["gate_violations"]  # parity held
        assert r["measured"]["macs"] < plain[0]["measured"]["macs"]


def test_release_search_ships_the_chosen_artifact(two_workers, workspace, test_target):
    proc = cli("release", "--search", "--recipe", str(two_workers["recipe"]), "--target", str(test_target),
               "--build-dir", str(two_workers["build"]), "--out", str(workspace / "search-release"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    chosen = next(r for r in two_workers["doc"]["trials"] if r["number"] == two_workers["doc"]["chosen"])
    assert f"ships {chosen['artifact']}" in proc.stdout
    archive = proc.stdout.strip().splitlines()[-1]
    check = cli("verify", archive)
    assert check.returncode == 0 and check.stdout.strip().endswith("OK"), check.stdout + check.stderr


def test_a_study_of_other_search_settings_is_refused_by_name(two_workers, test_target):
    changed = write_recipe(two_workers["recipe"].parent, "search2", **{**SEARCH, "search.energy": "[0.7, 0.95]"})
    proc = _search(changed, test_target, two_workers["build"])
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "search.energy" in proc.stderr and "Traceback" not in proc.stderr
    write_recipe(two_workers["recipe"].parent, "search2", **SEARCH)  # put the module's recipe back


def test_a_budget_no_trial_meets_ends_with_one_line_naming_the_best(two_workers, workspace, test_target):
    recipe = write_recipe(workspace, "budget", **{**SEARCH, "search.trials": "1", "search.max_latency_ms": "1e-6"})
    proc = _search(recipe, test_target, two_workers["build"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr  # progress lines, then one
    assert "Traceback" not in proc.stderr
    assert "none of 1 trial(s) met the gates; the closest was trial 0" in errors[0] and "p50" in errors[0]
    doc = json.loads((two_workers["build"] / "search" / "budget__test-host" / "search.json").read_text())
    assert doc["chosen"] is None and doc["trials"][0]["failed_gates"] == ["max_latency_ms"]


def test_settings_proposed_again_are_answered_from_the_earlier_trial_until_the_space_is_exhausted(
        two_workers, workspace, test_target):
    # one setting in the whole space: the sampler can only propose it again
    recipe = write_recipe(workspace, "one", **{**SEARCH, "search.decompose": "false", "search.trials": "2"})
    proc = _search(recipe, test_target, two_workers["build"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((two_workers["build"] / "search" / "one__test-host" / "search.json").read_text())
    assert [r["number"] for r in doc["trials"]] == [0] and doc["chosen"] == 0 and doc["front"] == [0]
    assert len(doc["repeats"]) == study.STOP_AFTER_REPEATS and {r["repeat_of"] for r in doc["repeats"]} == {0}
    assert proc.stderr.count("[search] trial 0: pte-fp32 accuracy") == 1  # measured once, never rebuilt
    assert "the space holds no more, stopping with 1 trial(s)" in proc.stderr
    assert "already measured" in (two_workers["build"] / "search" / "one__test-host" / "search.md").read_text()


@pytest.mark.slow
def test_a_killed_search_resumes_without_redoing_finished_trials(two_workers, workspace, test_target):
    recipe = write_recipe(workspace, "resume", **{**SEARCH, "search.trials": "3"})
    folder = two_workers["build"] / "search" / "resume__test-host"
    cmd = [sys.executable, "-m", "pipeline", "search", "--recipe", str(recipe), "--target", str(test_target),
           "--build-dir", str(two_workers["build"])]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while not (folder / "trials" / "000.json").exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert (folder / "trials" / "000.json").exists(), "the first trial never finished"
    time.sleep(3)  # into the second trial
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    done = json.loads((folder / "trials" / "000.json").read_text())
    mtime = (folder / "trials" / "000.json").stat().st_mtime_ns
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((folder / "search.json").read_text())
    assert (folder / "trials" / "000.json").stat().st_mtime_ns == mtime  # finished trial not redone
    assert doc["trials"][0] == done
    assert len(doc["trials"]) == 3 and all(r["state"] == "complete" for r in doc["trials"])
    assert doc["interrupted"], "the trial the kill cut short is recorded as interrupted and ran again"
    assert "trial 0:" not in proc.stderr

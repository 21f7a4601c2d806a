"""One trial: a pipeline run of the derived recipe in a child process, and what its report says about the candidate.

A child process per trial keeps a runtime that aborts, a converter that crashes or a gate that fails inside that
trial: the search records it with its line and goes on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pipeline.core import bounded_json
from pipeline.core.errors import ToolError
from pipeline.core.proc import last_line, python_module, venv_env
from pipeline.core.proc import run as run_process
from pipeline.search.space import Candidate

TRIAL_TIMEOUT_S = 6 * 3600


def command(recipe: Path, target: Path, cand: Candidate, target_set: dict[str, Any], build_dir: Path,
            run_dir: Path, threads: int | None) -> list[str]:
    """`phone-pipeline run` of this candidate: gates off (the search applies its own), no layer-by-layer pages."""
    args = ["run", "--recipe", str(recipe), "--target", str(target), "--build-dir", str(build_dir),
            "--run-dir", str(run_dir), "--no-gates", "--no-explain"]
    if threads:
        args += ["--threads", str(threads)]
    for key, value in cand.recipe_set.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    for key, value in {**cand.target_set, **target_set}.items():
        args += ["--target-set", f"{key}={json.dumps(value)}"]
    return python_module("pipeline", *args)


def run(cmd: list[str], log_path: Path, bench_lock: Path | None) -> tuple[bool, str, float]:
    """(finished, last line, seconds); the child's whole output goes to `log_path`."""
    env = venv_env({"PIPELINE_BENCH_LOCK": str(bench_lock)} if bench_lock else None)
    start = time.monotonic()
    try:
        proc = run_process(cmd, what="search trial", timeout=TRIAL_TIMEOUT_S, env=env, check=False)
    except ToolError as exc:  # timed out
        log_path.write_text(getattr(exc, "detail", "") or str(exc))
        return False, str(exc), time.monotonic() - start
    output = (proc.stderr or b"") + (proc.stdout or b"")
    log_path.write_bytes(output)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        return False, last_line(proc.stderr or proc.stdout), seconds
    return True, "", seconds


def _latency_row(report: dict, name: str) -> tuple[dict | None, str]:
    """The candidate's latency row and where it was measured: on the phone for adb targets, else the host."""
    on_device = [r for r in report.get("on_device", []) if r["name"] == name and r.get("latency_ms")]
    if on_device:
        row = on_device[0]
        return row, f"{row['device']} ({'emulated' if row['emulated'] else 'phone'}, {row['runtime']})"
    rows = [r for r in report["artifacts"] if r["name"] == name and r.get("latency_ms")]
    return (rows[0], f"host ({rows[0]['runtime']})") if rows else (None, "")


def measurements(run_dir: Path, cand: Candidate) -> dict[str, Any]:
    """Accuracy, latency and speed-up of the candidate artifact from the run's report.json.

    Raises ValueError with a line for the trial record when the report lacks what the search needs.
    """
    path = run_dir / "report.json"
    if not path.is_file():
        raise ValueError(f"{path}: the run wrote no report")
    report = bounded_json.load(path, "search trial report")
    rows = {r["name"]: r for r in report["artifacts"]}
    if cand.artifact not in rows:
        raise ValueError(f"the run built no {cand.artifact} (it built {', '.join(sorted(rows))})")
    row = rows[cand.artifact]
    if row.get("accuracy") is None:
        raise ValueError(f"{cand.artifact}: no accuracy (the recipe's data has no labels)")
    lat, where = _latency_row(report, cand.artifact)
    base, _ = _latency_row(report, cand.baseline)
    if lat is None or base is None:
        raise ValueError(f"{cand.artifact}: no measured latency for it or for {cand.baseline}")
    fp32 = report["evaluation"]["fp32_accuracy"]
    # the task metric, turned so that higher is better (an error metric such as mse is negated), in points for
    # fractions (top1, top5) and the metric's units otherwise
    metric = report["evaluation"].get("metric") or {"name": "top1", "higher_is_better": True}
    scale = (100 if metric["name"] in ("top1", "top5") else 1) * (1 if metric["higher_is_better"] else -1)
    p50, base_p50 = lat["latency_ms"]["p50"], base["latency_ms"]["p50"]
    speed = row.get("speedup") if where.startswith("host") and cand.artifact != cand.baseline else None
    return {
        "artifact": cand.artifact,
        "baseline": cand.baseline,
        "accuracy": scale * row["accuracy"],
        "fp32_accuracy": scale * fp32,
        "accuracy_drop": round(scale * (fp32 - row["accuracy"]), 4),
        "p50_ms": p50,
        "baseline_p50_ms": base_p50,
        "speedup": base_p50 / p50,
        "speedup_interval": None if speed is None else [speed["ci_low"], speed["ci_high"]],
        "measured_on": where,
        "emulated": bool(lat.get("emulated", False)),
        "eval_samples": report["evaluation"]["samples"],
        "bench_runs": report["benchmark"]["settings"]["runs"] if report["benchmark"].get("settings") else None,
        "bench_rounds": report["benchmark"].get("rounds"),
        "macs": row.get("macs"),
        "params": row.get("params"),
        "size_bytes": row.get("size_bytes"),
        "gate_violations": row.get("violations", []),  # the pipeline's gates: parity and compression limits
        "run_dir": str(run_dir),
    }

"""Recorded measurements: `measured/<recipe>__<target>.json`, written from a finished run's report.json and
manifest.json, checked into git beside `targets/`, and the only source of the numbers the README shows.

A field the report does not have is left out, never filled in: the file holds what a run measured and nothing else.

Example::

    phone-pipeline run --recipe fashion-mnist-mobilenetv2 --target host --record
    phone-pipeline record build/runs/fashion-mnist-mobilenetv2__host      # the same, for a finished run
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_json
from pipeline.core import bounded_json
from pipeline.core.errors import UserError, shown
from pipeline.core.names import is_safe_name
from pipeline.report.run_report import SCHEMA as REPORT_SCHEMA

__all__ = ["MEASURED_DIR", "SCHEMA", "check_out_dir", "document", "load", "load_all", "record"]

SCHEMA = "phone-pipeline/measured/1"
MEASURED_DIR = Path(__file__).resolve().parents[2] / "measured"  # beside pipeline/ at the top of the repository


def record(run_dir: Path, out_dir: Path = MEASURED_DIR) -> Path:
    """Write `out_dir/<recipe>__<target>.json` from the run folder's report.json and manifest.json; returns its path."""
    report, manifest = _read_run(run_dir)
    try:
        doc = document(report, manifest)
        names = (doc["recipe"]["name"], doc["target"]["name"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # a file from outside, not our own run
        raise UserError(f"{shown(run_dir)}: report.json or manifest.json cannot be read as a finished run "
                        f"({type(exc).__name__}: {shown(exc, 80)}); rerun the pipeline") from None
    key = "__".join(map(str, names))
    if not all(isinstance(n, str) and is_safe_name(n) for n in names):
        raise UserError(f"{shown(run_dir)}: recipe or target name {shown(key, 60)} cannot name a file in measured/")
    check_out_dir(out_dir)
    path = out_dir / f"{key}.json"
    atomic_write_json(path, doc)
    return path


def document(report: dict, manifest: dict) -> dict:
    """The measured file's contents: where, when and under what load, the settings, and each artifact's numbers."""
    doc = {
        "schema": SCHEMA,
        "date": _utc(report["created"]),
        "machine": _present(report["host"], {"processor": "processor", "cpu_model": "cpu_model", "cores": "cpu_count",
                                             "python": "python",
                                             "system": "system"}),
        "recipe": _present(report["recipe"], {"name": "name", "version": "version", "sha256": "sha256"}),
        "target": _present(manifest["target"], {"name": "name", "sha256": "sha256"}),
        "settings": _settings(report, manifest),
        "artifacts": [_artifact(a) for a in report["artifacts"]],
        "gates": _present(report["gates"], {"enforced": "enforced", "violations": "violations"}),
        "stages": [_present(st, {"name": "name", "seconds": "seconds", "cached": "cached", "skipped": "skipped"})
                   for st in report.get("stages") or []],
        "tools": report["tools"],
    }
    load = _present(report["benchmark"].get("machine") or {}, {
        "load1_before": "load1_before", "load1_after": "load1_after", "load1_max": "load1_max",
        "steal_fraction": "steal_fraction", "warnings": "warnings"})
    if load:
        doc["load"] = load
    if report.get("pruning"):
        p = report["pruning"]
        doc["pruning"] = _present({"macs_before": p["before"].get("macs"), "macs_after": p["after"].get("macs"),
                                   "params_before": p["before"].get("params"), "params_after": p["after"].get("params"),
                                   "accuracy_before_finetune": p.get("accuracy_before_finetune"),
                                   "accuracy": p.get("accuracy")})
    return doc


def _settings(report: dict, manifest: dict) -> dict:
    """The settings a reader needs to judge the numbers: training, compression, evaluation, benchmark."""
    recipe = manifest["recipe"]["settings"]
    prune = recipe.get("prune") or {}
    bench = report["benchmark"]
    return _present({
        "epochs": (recipe.get("train") or {}).get("epochs"),
        "pruning": _present({"enabled": prune.get("enabled"), "macs_factor": prune.get("macs_factor"),
                             "ratio": prune.get("ratio"), "importance": prune.get("importance"),
                             "finetune_epochs": (prune.get("finetune") or {}).get("epochs")}) or None,
        "decompose": (recipe.get("decompose") or {}).get("enabled"),
        "quantize_methods": (recipe.get("quantize") or {}).get("methods"),
        "eval_samples": report["evaluation"].get("samples"),
        "fp32_accuracy": report["evaluation"].get("fp32_accuracy"),
        "benchmark": _present({**_present(bench.get("settings") or {}, {"threads": "threads", "warmup": "warmup",
                                                                         "runs": "runs"}),
                               "rounds": bench.get("rounds"), "stopped": bench.get("stopped")}) or None,
        "overrides": _present({k: v for k, v in (manifest.get("options", {}).get("overrides") or {}).items() if v})
        or None,
    })


def _artifact(a: dict) -> dict:
    """One artifact's numbers: what it is, its metric, its parity with its reference, its latency and speed-up."""
    lat = a.get("latency_ms") or {}
    speed = a.get("speedup") or {}
    return _present({
        **_present(a, {"name": "name", "format": "format", "precision": "precision", "runtime": "runtime",
                       "size_bytes": "size_bytes", "accuracy": "accuracy", "gate": "gate"}),
        "parity": _present(a, {"reference": "reference", "top1_agreement": "top1_agreement",
                               "max_abs_diff": "max_abs_diff"}) or None,
        "latency": _present({"p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "rounds": a.get("rounds")}) or None,
        "speedup": _present(speed, {"baseline": "baseline", "ratio": "ratio", "ci_low": "ci_low",
                                    "ci_high": "ci_high", "confidence": "confidence"}) or None,
    })


def _present(source: dict, keys: dict | None = None) -> dict:
    """`source` (or its `keys`, renamed new -> old) without the values that are missing or None."""
    pairs = ((new, source.get(old)) for new, old in keys.items()) if keys else source.items()
    return {k: v for k, v in pairs if v is not None}


def _utc(created: str) -> str:
    when = datetime.fromisoformat(created)
    if when.tzinfo is None:
        raise ValueError(f"created {created!r} has no time zone")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_run(run_dir: Path) -> tuple[dict, dict]:
    if not run_dir.is_dir():
        raise UserError(f"{shown(run_dir)}: not a folder; give a run folder such as build/runs/<recipe>__<target>")
    report = bounded_json.load(run_dir / "report.json", f"{shown(run_dir / 'report.json')}")
    manifest = bounded_json.load(run_dir / "manifest.json", f"{shown(run_dir / 'manifest.json')}")
    if not isinstance(report, dict) or report.get("schema") != REPORT_SCHEMA:
        raise UserError(f"{shown(run_dir / 'report.json')}: schema is not {REPORT_SCHEMA!r}; rebuild it with "
                        f"`phone-pipeline report {shown(run_dir)}`")
    if not isinstance(manifest, dict):
        raise UserError(f"{shown(run_dir / 'manifest.json')}: not a run manifest (a JSON object); rerun the pipeline")
    return report, manifest


def check_out_dir(out_dir: Path) -> None:
    """The output folder must be a writable folder, or one that can be made; UserError naming it otherwise."""
    import os

    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{shown(out_dir)}: exists and is not a folder; measured files go into a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{shown(out_dir)}: cannot be made ({exc.strerror or exc})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UserError(f"{shown(out_dir)}: not writable; measured files cannot be written there")


def load(path: Path) -> dict:
    """One measured file, checked for its schema; UserError naming the file otherwise."""
    doc = bounded_json.load(path, shown(path))
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise UserError(f"{shown(path)}: schema is not {SCHEMA!r}; write it with `phone-pipeline record RUN_DIR`")
    for key in ("date", "machine", "recipe", "target", "artifacts"):
        if key not in doc:
            raise UserError(f"{shown(path)}: {key}: missing; write it with `phone-pipeline record RUN_DIR`")
    return doc


def load_all(measured_dir: Path = MEASURED_DIR) -> dict[str, dict]:
    """Every `measured_dir/*.json` by its stem (`<recipe>__<target>`), in name order."""
    if not measured_dir.is_dir():
        raise UserError(f"{shown(measured_dir)}: no such folder; record a run first (`phone-pipeline run --record`)")
    return {p.stem: load(p) for p in sorted(measured_dir.glob("*.json"))}

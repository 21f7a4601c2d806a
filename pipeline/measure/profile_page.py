"""The profile page of one artifact: profile/<artifact>.json (every number) and .md (the tables, or why there are
none: a record from measure/operator_profile.py `failed`)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_bytes

TOP_EVENTS = 25


def _ms(v: float) -> str:
    return f"{v:.3f}"


def _executorch(r: dict) -> list[str]:
    p = r["profile"]
    lines = [f"Whole execute p50 {_ms(p['execute_p50_ms'])} ms over {p['runs']} runs ({p['warmup']} warm-up runs "
             f"left out), {p['threads']} thread(s); delegates: {', '.join(p['backends']) or 'none'}; operators left "
             f"to portable kernels: {', '.join(p['portable_operators']) or 'none'}.", "",
             f"Timing: {p['timing']}.", "", "## By category", "", "| category | events | p50 ms | share |",
             "|---|---|---|---|"]
    lines += [f"| {g['category']} | {g['count']} | {_ms(g['p50_ms'])} | {g['share']:.1%} |" for g in p["categories"]]
    lines += ["", "## By kernel", "", "| kernel | category | delegated | events | p50 ms | share |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {g['kernel']} | {g['category']} | {'yes' if g['delegated'] else 'no'} | {g['count']} | "
              f"{_ms(g['p50_ms'])} | {g['share']:.1%} |" for g in p["kernels"]]
    slowest = sorted(p["events"], key=lambda e: -e["p50_ms"])[:TOP_EVENTS]
    lines += ["", f"## Slowest {len(slowest)} of {len(p['events'])} events", "",
              "| event | delegated (backend) | p50 ms | share |", "|---|---|---|---|"]
    lines += [f"| {e['name']} | {(e['backend'] or 'yes') if e['delegated'] else 'no'} | {_ms(e['p50_ms'])} | "
              f"{e['share']:.1%} |" for e in slowest]
    return lines


def _litert(r: dict) -> list[str]:
    p = r["profile"]
    lines = [f"**{p['timing']}.**", "", f"{p['op_count']} operators, {p['integer_ops']} of them integer in and out.",
             "", "| op | count | input type | output types | all input types |", "|---|---|---|---|---|"]
    lines += [f"| {o['op']} | {o['count']} | {o['input_dtype']} | {', '.join(o['output_dtypes'])} | "
              f"{', '.join(o['all_input_dtypes'])} |" for o in p["ops"]]
    return lines


def markdown(r: dict) -> str:
    art = r["artifact"]
    if r.get("profile") is None:
        why = f"{art['format']} {art['precision']} `{art['path']}` could not be profiled: {r['error']}."
        return "\n".join([f"# Per-operator profile: {art['name']}", "", why, ""])
    lines = [f"# Per-operator profile: {art['name']}", "",
             f"{art['format']} {art['precision']} `{art['path']}` in {r['profile']['runtime']}.", ""]
    lines += _executorch(r) if r["profile"]["runtime"] == "executorch" else _litert(r)
    return "\n".join([*lines, "", f"Took {r['seconds']:.1f} s.", ""])


def write(folder: Path, r: dict) -> Path:
    """Write the two files (each atomically); returns the .md path."""
    name = r["artifact"]["name"]
    atomic_write_bytes(folder / f"{name}.json", (json.dumps(r, indent=2) + "\n").encode())
    md = folder / f"{name}.md"
    atomic_write_bytes(md, markdown(r).encode())
    return md

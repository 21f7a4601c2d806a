"""Where int8 does not pay: an int8 artifact slower than its float source, or within the noise of it.

The float source of an int8 artifact is the fp32 artifact of the same format, pruning and factorisation (a pruned
int8 .pte against the pruned fp32 .pte, not against the unpruned one: pruning's gain is not int8's). Both ran in the
same benchmark rounds, so their per-round p50s give the speed-up with its bootstrap interval
(pipeline.measure.stats.speedup_interval, seeded: a rebuilt report says the same). int8 does not pay when that
interval reaches 1.0 or below: the user would get int8's accuracy risk for no speed that the measurement can see.

Each such artifact's line names the op that costs it most, from the per-operator profile pages in the run folder
(profile/<artifact>.json, the ones `phone-pipeline profile` writes; the report stage profiles these artifacts and
their float sources when no page of the very same file is there): the op's share of the invoke and its ms, and the
share of the same op in the float source, matched by its name without XNNPACK's datatype tags
("Convolution (NHWC, QC8) IGEMM #3" and "Convolution (NHWC, F32) IGEMM #3"). LiteRT's Python API has no
per-operator time, so a .tflite line says so and points at its op table.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from pipeline.core import bounded_json
from pipeline.core.errors import UserError
from pipeline.measure.executorch_ops import OVERHEAD
from pipeline.measure.operator_profile import FORMATS
from pipeline.measure.stats import speedup_interval


def float_source(art: dict, rows: list[dict]) -> dict | None:
    """The benchmarked fp32 artifact of `art`'s format, pruning and factorisation, if any."""
    for r in rows:
        if (r["format"] == art["format"] and r["precision"] == "fp32" and r["pruned"] == art["pruned"]
                and bool(r.get("lowrank")) == bool(art.get("lowrank")) and r.get("quantization", "none") == "none"
                and r.get("round_p50_ms")):
            return r
    return None


def not_paying(rows: list[dict]) -> list[dict]:
    """Each int8 artifact whose speed-up over its float source has an interval that reaches 1.0 or below."""
    found = []
    for art in rows:
        if art["precision"] != "int8" or not art.get("round_p50_ms"):
            continue
        src = float_source(art, rows)
        if src is None or len(src["round_p50_ms"]) != len(art["round_p50_ms"]):
            continue
        s = speedup_interval(src["round_p50_ms"], art["round_p50_ms"])
        if s["ci_low"] <= 1.0:
            found.append({"artifact": art["name"], "float_source": src["name"],
                          "p50_ms": (art.get("latency_ms") or {}).get("p50"),
                          "float_p50_ms": (src.get("latency_ms") or {}).get("p50"),
                          "speedup": s["ratio"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                          "verdict": "slower" if s["ci_high"] < 1.0 else "within noise"})
    return found


def op_kind(event: str) -> str:
    """An XNNPACK event name without its datatype tags: "Convolution (NHWC, QC8) IGEMM #3" -> "Convolution (NHWC)
    IGEMM #3", so an int8 op finds its float counterpart."""
    return re.sub(r",\s*[A-Z]+\d+[A-Z]*(?=[,)])", "", event)


def page_of(run_dir: Path, row: dict) -> dict | None:
    """The profile page record of this very artifact file (same sha256) in `run_dir`, if one is there."""
    path = run_dir / "profile" / f"{row['name']}.json"
    if not path.is_file():
        return None
    try:
        rec = bounded_json.load(path, str(path))
    except UserError:
        return None  # a damaged page is no profile; `phone-pipeline profile` rewrites it
    ok = isinstance(rec, dict) and (rec.get("artifact") or {}).get("sha256") == row["sha256"]
    return rec if ok else None


def costliest_op(rec: dict | None, float_rec: dict | None, command: str) -> dict:
    """What costs an int8 artifact most, from its profile record and its float source's: the op, its share of the
    invoke and ms, the same op's share in the float source; or why there is no such op (no profile, a failed one,
    LiteRT's untimed op table). `command` shows the whole table."""
    if rec is None:
        return {"op": None, "command": command, "why": "not profiled in this run"}
    if rec.get("profile") is None:
        return {"op": None, "command": command, "why": f"profiling failed: {rec.get('error')}"}
    p = rec["profile"]
    if p["runtime"] != "executorch":
        return {"op": None, "command": command, "runtime": p["runtime"], "op_count": p.get("op_count"),
                "integer_ops": p.get("integer_ops"), "why": "LiteRT's Python API gives no per-operator time"}
    ops = [e for e in p["events"] if e["name"] != OVERHEAD]
    if not ops:
        return {"op": None, "command": command, "why": "the profile recorded no operator events"}
    top = max(ops, key=lambda e: e["p50_ms"])
    out = {"op": top["name"], "kernel": top["kernel"], "category": top["category"],
           "share": top["share"], "p50_ms": top["p50_ms"], "execute_p50_ms": p["execute_p50_ms"],
           "runtime": p["runtime"], "threads": p["threads"], "runs": p["runs"], "warmup": p["warmup"],
           "overhead_share": sum(e["share"] for e in p["events"] if e["name"] == OVERHEAD),
           "float": _same_op(top["name"], float_rec), "float_profiled": _timed(float_rec), "command": command}
    return out


def _timed(rec: dict | None) -> bool:
    return ((rec or {}).get("profile") or {}).get("runtime") == "executorch"


def _same_op(event: str, float_rec: dict | None) -> dict | None:
    events = ((float_rec or {}).get("profile") or {}).get("events") or []
    for e in events:
        if op_kind(e["name"]) == op_kind(event):
            return {"op": e["name"], "share": e["share"], "p50_ms": e["p50_ms"]}
    return None


def attach_costliest_ops(found: list[dict], rows: list[dict], run_dir: Path) -> None:
    """Give each not-paying entry its `costliest_op`, from the profile pages in `run_dir` (see `costliest_op`)."""
    by_name = {r["name"]: r for r in rows}
    for f in found:
        art, src = by_name[f["artifact"]], by_name[f["float_source"]]
        command = f"phone-pipeline profile {shlex.quote(str(run_dir))} {shlex.quote(art['name'])}"
        if art["format"] not in FORMATS:
            f["costliest_op"] = {"op": None, "command": None,
                                 "why": f"a {art['format']} artifact has no per-operator profile"}
            continue
        f["costliest_op"] = costliest_op(page_of(run_dir, art), page_of(run_dir, src), command)


def markdown(found: list[dict]) -> list[str]:
    """A report section naming each int8 artifact that does not pay, with its numbers (nothing when all pay)."""
    if not found:
        return []
    lines = ["## int8 that does not pay", "",
             "These int8 artifacts are not measurably faster than the fp32 artifact they were made from (same format, "
             "pruning and factorisation, same benchmark rounds; speed-up of median p50s with its 95% bootstrap "
             "interval): their accuracy risk buys no speed here.", ""]
    for f in found:
        lines.append(f"- **`{f['artifact']}` is {f['verdict']}**: p50 {_ms(f['p50_ms'])} ms against "
                     f"{_ms(f['float_p50_ms'])} ms for `{f['float_source']}`, {f['speedup']:.2f}x "
                     f"[{f['ci_low']:.2f}, {f['ci_high']:.2f}]." + _op_text(f.get("costliest_op"), f["float_source"]))
    return lines + [""]


def _op_text(c: dict | None, float_source: str) -> str:
    """The costliest op as a clause of the artifact's line (nothing for reports made before ops were named)."""
    if c is None:
        return ""
    see = f" Whole table: `{c['command']}`." if c.get("command") else ""
    if c["op"] is None:
        extra = (f" ({c['op_count']} operators, {c['integer_ops']} of them integer in and out)"
                 if c.get("op_count") is not None else "")
        return f" Costliest op: not named, {c['why']}{extra}.{see}"
    fl = c["float"]
    if fl:
        same = f"; the same op in `{float_source}`: `{fl['op']}` {fl['share']:.1%}, {fl['p50_ms']:.3f} ms"
    elif c.get("float_profiled"):
        same = f"; no op of that kind in `{float_source}`'s profile"
    else:
        same = f"; `{float_source}` has no per-operator profile in this run"
    return (f" Costliest op: `{c['op']}` ({c['category']}), {c['share']:.1%} of the invoke, {c['p50_ms']:.3f} ms "
            f"of {c['execute_p50_ms']:.3f} ms (runtime and delegate overhead outside the ops: "
            f"{c['overhead_share']:.1%}){same} ({c['runtime']}, {c['threads']} thread(s), {c['runs']} runs "
            f"after {c['warmup']} warm-up).{see}")


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"

"""Where int8 does not pay: an int8 artifact slower than its float source, or within the noise of it.

The float source of an int8 artifact is the fp32 artifact of the same format, pruning and factorisation (a pruned
int8 .pte against the pruned fp32 .pte, not against the unpruned one: pruning's gain is not int8's). Both ran in the
same benchmark rounds, so their per-round p50s give the speed-up with its bootstrap interval
(pipeline.measure.stats.speedup_interval, seeded: a rebuilt report says the same). int8 does not pay when that
interval reaches 1.0 or below: the user would get int8's accuracy risk for no speed that the measurement can see.
"""

from __future__ import annotations

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
                     f"[{f['ci_low']:.2f}, {f['ci_high']:.2f}].")
    return lines + [""]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"

"""Which trial a search ships, and why, from the trials' records alone (so search.md can be rebuilt and tested)."""

from __future__ import annotations

from typing import Any


def feasible(records: list[dict]) -> list[dict]:
    return [r for r in records if r["outcome"] == "feasible"]


def choose(records: list[dict], space: dict) -> tuple[dict | None, str]:
    """(chosen record or None, the reason in one sentence).

    With a latency budget (max_latency_ms or min_speedup), the most accurate trial that meets it and the accuracy
    limit; without one, the fastest trial within the accuracy limit. Ties go to the smaller file, then the lower
    trial number.
    """
    pool = feasible(records)
    if not pool:
        return None, ""
    budget = space["max_latency_ms"] > 0 or space["min_speedup"] > 0
    if budget:
        best = min(pool, key=lambda r: (-r["measured"]["accuracy"], r["measured"]["p50_ms"],
                                        r["measured"]["size_bytes"] or 0, r["number"]))
        limits = ([f"p50 <= {space['max_latency_ms']} ms"] if space["max_latency_ms"] > 0 else []) + \
                 ([f"speed-up >= {space['min_speedup']}x"] if space["min_speedup"] > 0 else [])
        return best, (f"the most accurate of the {len(pool)} trial(s) that meet the budget ({', '.join(limits)}) "
                      f"and lose at most {space['max_accuracy_drop']} points against fp32")
    best = min(pool, key=lambda r: (r["measured"]["p50_ms"], -r["measured"]["accuracy"],
                                    r["measured"]["size_bytes"] or 0, r["number"]))
    return best, (f"no latency budget is set, so the fastest of the {len(pool)} trial(s) that lose at most "
                  f"{space['max_accuracy_drop']} points against fp32")


def best_found_line(records: list[dict], space: dict) -> str:
    """For a search where nothing qualified: what came closest, in one line."""
    measured = [r for r in records if r["state"] == "complete"]
    if not measured:
        crashed = [r for r in records if r["state"] == "fail"]
        first = crashed[0]["line"] if crashed else "no trial ran"
        return f"none of {len(records)} trial(s) finished (first failure: {first})"
    best = min(measured, key=lambda r: (len(r["failed_gates"]), sum(max(0.0, v) for v in r["gates"].values())))
    m = best["measured"]
    return (f"none of {len(records)} trial(s) met the gates; the closest was trial {best['number']} "
            f"({best['settings']}: {m['artifact']}, accuracy {m['accuracy']:.2f}%, p50 {m['p50_ms']:.4f} ms, "
            f"{m['speedup']:.2f}x) which fails {best['line']}")


def summary_row(r: dict) -> dict[str, Any]:
    """The columns of the trials table."""
    m = r.get("measured") or {}
    return {"trial": r["number"], "settings": r["settings"], "artifact": r["artifact"],
            "accuracy": m.get("accuracy"), "drop": m.get("accuracy_drop"), "p50_ms": m.get("p50_ms"),
            "speedup": m.get("speedup"), "outcome": r["outcome"], "line": r.get("line", "")}

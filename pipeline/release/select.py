"""Which artifacts go into a release: per deployable format, the fastest by measured p50 among those that passed."""

from __future__ import annotations

from dataclasses import dataclass

DEPLOYABLE_FORMATS = ("tflite", "pte")
RULE = ("for each deployable format (tflite, pte): the artifact with the lowest measured p50 latency among those "
        "whose evaluation gate passed; ties go to the smaller file, then the name")


@dataclass(frozen=True)
class Candidate:
    """One deployable artifact of the run and why it was or was not chosen."""

    name: str
    format: str
    precision: str
    p50_ms: float | None
    size_bytes: int
    gate: str
    chosen: bool = False

    def to_dict(self) -> dict:
        return {"name": self.name, "format": self.format, "precision": self.precision, "p50_ms": self.p50_ms,
                "size_bytes": self.size_bytes, "gate": self.gate, "chosen": self.chosen}


def candidates(report: dict) -> list[Candidate]:
    """Every deployable artifact in a report.json document, in report order, none chosen yet."""
    out = []
    for row in report["artifacts"]:
        if row["format"] not in DEPLOYABLE_FORMATS:
            continue
        lat = row.get("latency_ms") or {}
        out.append(Candidate(row["name"], row["format"], row["precision"], lat.get("p50"), row["size_bytes"],
                             row["gate"]))
    return out


def choose(report: dict) -> list[Candidate]:
    """All deployable candidates, with `chosen` set on the winner of each format (see RULE).

    Example: tflite-fp32 (p50 0.069 ms) and tflite-fp16 (0.068 ms), both passed -> tflite-fp16 is chosen.
    """
    pool = candidates(report)
    winners = set()
    for fmt in DEPLOYABLE_FORMATS:
        eligible = [c for c in pool if c.format == fmt and c.gate == "pass" and c.p50_ms is not None]
        if eligible:
            winners.add(min(eligible, key=lambda c: (c.p50_ms, c.size_bytes, c.name)).name)
    return [Candidate(**{**c.to_dict(), "chosen": c.name in winners}) for c in pool]

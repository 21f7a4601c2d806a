"""Which artifacts go into a release: per deployable format, the fastest measured one among those that passed.

Latency comes from the target's own device when the run measured that format there (the on_device stage), and from
the host benchmark otherwise. An artifact the device ran must also have passed the on-device gate (its outputs agree
with the host's); one the device did not run is not shipped in a format the device did run, because it was never
validated on that device.
"""

from __future__ import annotations

from dataclasses import dataclass

DEPLOYABLE_FORMATS = ("tflite", "pte")
RULE = ("for each deployable format (tflite, pte): the artifact with the lowest measured p50 latency among those "
        "whose evaluation gate passed; the latency is the target device's own (on_device) where the device ran "
        "that format, and then only artifacts that passed the on-device gate compete; else the host benchmark's; "
        "ties go to the smaller file, then the name")


@dataclass(frozen=True)
class Candidate:
    """One deployable artifact of the run and why it was or was not chosen."""

    name: str
    format: str
    precision: str
    p50_ms: float | None  # the latency that ranked it: the device's where `latency_source` is "device"
    size_bytes: int
    gate: str  # host evaluation gate
    host_p50_ms: float | None = None
    latency_source: str = "host"  # "host" or "device"
    device_gate: str | None = None  # on-device gate; None when the device did not run it
    chosen: bool = False

    def to_dict(self) -> dict:
        return {"name": self.name, "format": self.format, "precision": self.precision, "p50_ms": self.p50_ms,
                "latency_source": self.latency_source, "host_p50_ms": self.host_p50_ms,
                "size_bytes": self.size_bytes, "gate": self.gate, "device_gate": self.device_gate,
                "chosen": self.chosen}

    @property
    def eligible(self) -> bool:
        return self.gate == "pass" and self.p50_ms is not None and self.device_gate in (None, "pass")


def target_device_rows(report: dict) -> dict[str, dict]:
    """The target device's on-device results by artifact name, in report order (none for a host target)."""
    target = report.get("target", {}).get("name")
    return {r["name"]: r for r in report.get("on_device") or [] if r.get("device") == target}


def candidates(report: dict) -> list[Candidate]:
    """Every deployable artifact in a report.json document, in report order, none chosen yet."""
    on_device = target_device_rows(report)
    device_formats = {r["format"] for r in on_device.values()}
    out = []
    for row in report["artifacts"]:
        if row["format"] not in DEPLOYABLE_FORMATS:
            continue
        host_p50 = (row.get("latency_ms") or {}).get("p50")
        dev = on_device.get(row["name"])
        if row["format"] in device_formats:
            p50 = None if dev is None else (dev.get("latency_ms") or {}).get("p50")
            source, device_gate = "device", "not run on the device" if dev is None else dev.get("gate", "pass")
        else:
            p50, source, device_gate = host_p50, "host", None
        out.append(Candidate(row["name"], row["format"], row["precision"], p50, row["size_bytes"], row["gate"],
                             host_p50, source, device_gate))
    return out


def choose(report: dict) -> list[Candidate]:
    """All deployable candidates, with `chosen` set on the winner of each format (see RULE).

    Example: tflite-fp32 (p50 0.069 ms) and tflite-fp16 (0.068 ms), both passed -> tflite-fp16 is chosen.
    """
    pool = candidates(report)
    winners = set()
    for fmt in DEPLOYABLE_FORMATS:
        eligible = [c for c in pool if c.format == fmt and c.eligible]
        if eligible:
            winners.add(min(eligible, key=lambda c: (c.p50_ms, c.size_bytes, c.name)).name)
    return [Candidate(**{**c.to_dict(), "chosen": c.name in winners}) for c in pool]

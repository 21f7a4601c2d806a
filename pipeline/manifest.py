"""Reading a run's manifest.json: one place that knows how stages and artifacts are recorded in it."""

from __future__ import annotations


def stage_data(manifest: dict, name: str) -> dict:
    """The measurements a stage recorded (empty if the stage did not run or was not reached)."""
    for rec in manifest["stages"]:
        if rec["name"] == name:
            return rec["data"]
    return {}


def artifacts(manifest: dict) -> dict[str, dict]:
    """Every artifact the run recorded, by name, in stage order."""
    return {a["name"]: a for rec in manifest["stages"] for a in rec["artifacts"]}

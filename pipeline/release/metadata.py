"""metadata.json and VERSIONS.json of a bundle, built from the run's manifest and report alone (no paths, no clock)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.manifest import artifacts
from pipeline.artifacts.preprocess import InputSpec
from pipeline.release.metadata_schema import SCHEMA
from pipeline.release.select import RULE, Candidate, target_device_rows
from pipeline.runtimes import RUNTIME_OF_FORMAT

ARTIFACT_FIELDS = {f.name for f in dataclasses.fields(Artifact)}


def manifest_artifacts(manifest: dict) -> dict[str, dict]:
    """name -> the artifact's record in the manifest (extra keys such as `quantization` or `pruned` kept)."""
    return artifacts(manifest)


def to_artifact(record: dict, path: Path) -> Artifact:
    """The runtime-facing Artifact of a manifest record, pointing at `path`; keys Artifact lacks are ignored."""
    known = {k: v for k, v in record.items() if k in ARTIFACT_FIELDS}
    return Artifact.from_dict({**known, "path": str(path)})


def bundle_file(record: dict) -> str:
    return f"models/{record['name']}.{record['format']}"


def outputs_file(record: dict) -> str:
    return f"samples/outputs/{record['name']}.npy"


def _no_absolute_paths(d: dict) -> dict:
    return {k: v for k, v in d.items() if not (isinstance(v, str) and v.startswith("/"))}


def artifact_entry(record: dict) -> dict:
    """One `artifacts[]` entry: the keys the Android parser reads, then the pipeline's own."""
    entry = {
        "name": record["name"],
        "file": bundle_file(record),
        "format": record["format"],
        "precision": record["precision"],
        "layout": record["layout"],
        "input_shape": list(record["input_shape"]),
        "input_dtype": record["input_dtype"],
        "input_quantization": record["input_quantization"],
        "output_quantization": record["output_quantization"],
        "sha256": record["sha256"],
        "size_bytes": record["size_bytes"],
        "runtime": RUNTIME_OF_FORMAT[record["format"]],
        "sample_outputs": outputs_file(record),
        "details": _no_absolute_paths(record.get("extra", {})),
        "pruned": bool(record.get("pruned", False)),
        "quantization": record.get("quantization", "none"),
        "params": record.get("params", 0),
        "macs": record.get("macs", 0),
    }
    # Stages added later (pruning, quantization) record their own keys; carry them over as they are.
    entry.update({k: v for k, v in sorted(record.items()) if k not in ARTIFACT_FIELDS and k not in entry})
    return entry


def metadata(manifest: dict, report: dict, chosen: list[dict], candidates: list[Candidate], spec: InputSpec,
             labels: tuple[str, ...], samples: list[dict], measured_on: str) -> dict:
    """The bundle's metadata.json document (schema phone-pipeline/bundle/1)."""
    return {
        "schema": SCHEMA,
        "model": {"name": report["recipe"]["name"], "version": report["recipe"]["version"],
                  "task": "image-classification"},
        "input": spec.to_dict(),
        "labels": list(labels),
        "output": {"kind": "logits", "classes": len(labels)},
        "artifacts": [artifact_entry(r) for r in chosen],
        "samples": samples,
        "release": {"recipe": report["recipe"]["name"], "recipe_sha256": manifest["recipe"]["sha256"],
                    "version": report["recipe"]["version"], "target": report["target"]["name"],
                    "device_kind": manifest["target"]["settings"]["device"]["kind"]},
        "selection": {"rule": RULE, "measured_on": measured_on, "candidates": [c.to_dict() for c in candidates]},
    }


def versions(manifest: dict, chosen: list[dict]) -> dict:
    """VERSIONS.json: every tool version the manifest recorded, overall and per shipped artifact."""
    return {
        "python": manifest["host"]["python"],
        "tools": manifest["tools"],
        "artifacts": {r["name"]: r.get("tools", {}) for r in chosen},
    }


def host_description(manifest: dict) -> str:
    h = manifest["host"]
    return f"the host CPU of the build machine ({h['processor']}, {h['cpu_count']} cores, {h['system']}); not a phone"


def device_description(report: dict) -> str | None:
    """The target's device in words, from its on-device results; None when nothing ran on it."""
    rows = list(target_device_rows(report).values())
    if not rows:
        return None
    r = rows[0]
    where = (f"the device of target {report['target']['name']!r} (adb serial {r['serial']}, "
             f"{r.get('abi') or 'unknown ABI'})")
    if r["emulated"]:
        where += (", EMULATED under qemu-user: hundreds of times slower than a phone, used only to rank "
                  "artifacts against each other on that device")
    return where


def measured_on(manifest: dict, report: dict, candidates: list[Candidate]) -> str:
    """Where the latencies that ranked the candidates were measured, in words, per format."""
    by_source: dict[str, list[str]] = {}
    for c in candidates:
        formats = by_source.setdefault(c.latency_source, [])
        if c.format not in formats:
            formats.append(c.format)
    parts = []
    if "device" in by_source:
        parts.append(f"{', '.join(by_source['device'])}: {device_description(report)}")
    if "host" in by_source:
        parts.append(f"{', '.join(by_source['host'])}: {host_description(manifest)}")
    return "; ".join(parts) or host_description(manifest)

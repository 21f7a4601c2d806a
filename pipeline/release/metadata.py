"""metadata.json and VERSIONS.json of a bundle, built from the run's manifest and report alone (no paths, no clock)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.manifest import artifacts
from pipeline.artifacts.preprocess import InputSpec
from pipeline.artifacts.tensors import inputs_of, outputs_of
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


def outputs_file(record: dict, k: int = 0) -> str:
    """Where the recorded outputs of the artifact's output `k` go (output 0 where a one-output bundle had them)."""
    return f"samples/outputs/{record['name']}.npy" if k == 0 else f"samples/outputs/{record['name']}.out{k}.npy"


def tensor_lists(record: dict, recorded: list[np.ndarray]) -> tuple[list[dict], list[dict]]:
    """The artifact's `inputs` and `outputs` entries: every tensor with name, shape, dtype, layout (image tensors)
    and int8 quantization, for a TFLite file its tensor index where the pipeline recorded it (TensorFlow's integer
    quantization renames outputs, so names alone do not find them); each output with the file of its recorded
    outputs (its shape from them where the artifact, made before tensors were recorded, did not say)."""
    art = to_artifact(record, Path(record["path"]))
    indices = art.extra.get("tflite_tensor_indices") or {}  # which of the file's tensors is which (onnx2tf renames)
    ins = [s.to_dict() for s in inputs_of(art)]
    outs = []
    for k, (spec, y) in enumerate(zip(outputs_of(art), recorded, strict=True)):
        d = spec.to_dict()
        if not d["shape"]:
            d["shape"] = [1, *y.shape[1:]]
        outs.append({**d, "sample_outputs": outputs_file(record, k)})
    for key, entries in (("inputs", ins), ("outputs", outs)) if indices else ():
        for d, index in zip(entries, indices[key], strict=True):
            d["tflite_index"] = int(index)
    return ins, outs


def _no_absolute_paths(d: dict) -> dict:
    return {k: v for k, v in d.items() if not (isinstance(v, str) and v.startswith("/"))}


def artifact_entry(record: dict, recorded: list[np.ndarray]) -> dict:
    """One `artifacts[]` entry: the keys the Android parser reads, then the pipeline's own."""
    ins, outs = tensor_lists(record, recorded)
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
        "inputs": ins,
        "outputs": outs,
        "details": _no_absolute_paths(record.get("extra", {})),
        "pruned": bool(record.get("pruned", False)),
        "quantization": record.get("quantization", "none"),
        "params": record.get("params", 0),
        "macs": record.get("macs", 0),
    }
    # Stages added later (pruning, quantization) record their own keys; carry them over as they are.
    entry.update({k: v for k, v in sorted(record.items()) if k not in ARTIFACT_FIELDS and k not in entry})
    return entry


def is_classifier(spec: InputSpec | None, labels: tuple[str, ...], recorded: dict[str, list[np.ndarray]]) -> bool:
    """A picture classifier: one picture input, one output of one score per label (what the Android app shows)."""
    return (spec is not None and len(labels) > 0
            and all(len(ys) == 1 and ys[0].shape[1:] == (len(labels),) for ys in recorded.values()))


def metadata(manifest: dict, report: dict, chosen: list[dict], candidates: list[Candidate], inputs: Inputs,
             labels: tuple[str, ...], recorded: dict[str, list[np.ndarray]], measured_on: str) -> dict:
    """The bundle's metadata.json document (schema phone-pipeline/bundle/1). A picture model keeps the `input`
    block (how to preprocess a picture) and PNG samples; any other model lists `sample_inputs` (.npy files, one per
    input). `task` is image-classification for a picture classifier, else "tensors" (read the artifacts' outputs)."""
    classifier = is_classifier(inputs.picture, labels, {r["name"]: recorded[r["name"]] for r in chosen})
    doc: dict = {
        "schema": SCHEMA,
        "model": {"name": report["recipe"]["name"], "version": report["recipe"]["version"],
                  "task": "image-classification" if classifier else "tensors"},
    }
    if inputs.picture is not None:
        doc["input"] = inputs.picture.to_dict()
    doc["labels"] = list(labels)  # for a model of several outputs, the class names of its class scores
    if classifier:
        doc["output"] = {"kind": "logits", "classes": len(labels)}
    samples = inputs.samples if labels else [{**s, "label": None} for s in inputs.samples]
    doc.update({
        "artifacts": [artifact_entry(r, recorded[r["name"]]) for r in chosen],
        "samples": samples,
        "release": {"recipe": report["recipe"]["name"], "recipe_sha256": manifest["recipe"]["sha256"],
                    "version": report["recipe"]["version"], "target": report["target"]["name"],
                    "device_kind": manifest["target"]["settings"]["device"]["kind"]},
        "selection": {"rule": RULE, "measured_on": measured_on, "candidates": [c.to_dict() for c in candidates]},
    })
    if inputs.arrays:
        doc["sample_inputs"] = inputs.arrays
    return doc


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The bundle's sample inputs: a picture model's input spec and PNG entries, or another model's .npy entries."""

    picture: InputSpec | None
    samples: list[dict]  # {"file": png, "label"} for pictures; {"label"} otherwise
    arrays: list[dict]  # `sample_inputs`: {"name", "file", "shape", "dtype"} per input; [] for pictures


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

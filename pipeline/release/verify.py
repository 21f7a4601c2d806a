"""`pipeline verify BUNDLE`: is this bundle whole, well-formed, and do its models still give the recorded outputs?

Steps, each refusing with one line that names the bundle and the file or key: safe extraction (archives only),
SHA256SUMS, metadata.json against its schema, each artifact's sha256 against the metadata, the sample pictures and the
recorded outputs (bounded before they are decoded), then every artifact loaded in its own runtime, in a child process,
on the bundled sample pictures, compared with the outputs recorded at release time (tolerances in
pipeline/release/samples.py). A runtime that aborts on a damaged file kills that child, and verify says so in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts.artifact import Artifact, sha256_file
from pipeline.artifacts.preprocess import InputSpec
from pipeline.core import bounded_json, work_folders
from pipeline.core.errors import UserError, shown
from pipeline.release import archive, checksums, samples
from pipeline.release.metadata_schema import validate_metadata


@dataclass(frozen=True)
class ArtifactCheck:
    name: str
    runtime: str
    samples: int
    max_abs_diff: float
    allowed: float


@dataclass(frozen=True)
class Verdict:
    """What a successful verification checked."""

    bundle: str
    files: int
    artifacts: tuple[ArtifactCheck, ...]

    def summary(self) -> list[str]:
        lines = [f"{self.bundle}: {self.files} files match SHA256SUMS; metadata.json is valid"]
        lines += [f"{self.bundle}: {a.name} ({a.runtime}): {a.samples} samples reproduce the recorded outputs "
                  f"(max abs diff {a.max_abs_diff:.2e}, allowed {a.allowed:.2e})" for a in self.artifacts]
        lines.append(f"{self.bundle}: OK")
        return lines


def _refuse_special_files(root: Path, label: str) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            raise UserError(f"{label}: {shown(p.relative_to(root).as_posix())}: refused: not a plain file or folder")


METADATA_MAX_BYTES = 4 << 20


def _read_metadata(root: Path, label: str) -> dict:
    doc = bounded_json.load(root / "metadata.json", f"{label}: metadata.json", max_bytes=METADATA_MAX_BYTES)
    return validate_metadata(doc, f"{label}: metadata.json")


@dataclass(frozen=True)
class Contents:
    """A bundle folder whose files, documents and recorded outputs were checked, its models not yet run."""

    files: int
    metadata: dict
    inputs: np.ndarray  # the sample pictures through the reference preprocessing
    recorded: dict[str, np.ndarray]  # artifact name -> the outputs recorded at release time


def _check_model_file(root: Path, entry: dict, label: str) -> None:
    path = root / entry["file"]
    if not path.is_file():
        raise UserError(f"{label}: {shown(entry['file'])}: missing")
    if sha256_file(path) != entry["sha256"]:
        raise UserError(f"{label}: {shown(entry['file'])}: sha256 differs from metadata.json")


def _recorded_outputs(root: Path, entry: dict, shape: tuple[int, int], label: str) -> np.ndarray:
    rel = entry["sample_outputs"]
    if not (root / rel).is_file():
        raise UserError(f"{label}: {shown(rel)}: missing")
    try:
        return samples.read_outputs(root / rel, rel, shape)
    except samples.SampleError as exc:
        raise UserError(f"{label}: {exc}") from None


def check_contents(root: Path, label: str) -> Contents:
    """Everything `verify` checks short of running the models: plain files and folders only, SHA256SUMS,
    metadata.json (bounded, against its schema: input size and sample count too), each model's sha256, the recorded
    outputs (headers checked before reading), then the sample pictures (decoded one at a time, within limits).
    Raises UserError with one line."""
    _refuse_special_files(root, label)
    files = checksums.check(root, label)
    meta = _read_metadata(root, label)
    for s in meta["samples"]:
        if not (root / s["file"]).is_file():
            raise UserError(f"{label}: {shown(s['file'])}: missing")
    recorded = {}
    for entry in meta["artifacts"]:  # every cheap check before the pictures are decoded
        _check_model_file(root, entry, label)
        rows = (len(meta["samples"]), meta["output"]["classes"])
        recorded[entry["name"]] = _recorded_outputs(root, entry, rows, label)
    try:
        x = samples.inputs(root, meta["samples"], InputSpec.from_dict(meta["input"]))
    except samples.SampleError as exc:
        raise UserError(f"{label}: {exc}") from None
    return Contents(files, meta, x, recorded)


def _run_artifact(root: Path, entry: dict, contents: Contents, label: str) -> ArtifactCheck:
    where = f"{label}: {shown(entry['file'])}"
    art = Artifact(entry["name"], str(root / entry["file"]), entry["format"], entry["precision"], entry["layout"],
                   tuple(entry["input_shape"]), entry["input_dtype"], entry["input_quantization"],
                   entry["output_quantization"], entry["sha256"])
    x, want = contents.inputs, contents.recorded[entry["name"]]
    try:
        got = samples.outputs(art, x)
    except samples.ArtifactRunError as exc:  # the runtime refused or died on the file: its own words
        raise UserError(f"{where}: the {entry['format']} runtime cannot run it ({exc})") from None
    if got.shape != want.shape:
        raise UserError(f"{label}: {shown(entry['sample_outputs'])}: shape {list(want.shape)}, the artifact gives "
                        f"{list(got.shape)}")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    allowed = samples.allowed_difference(want, entry["output_quantization"])
    if not diff <= allowed:
        raise UserError(f"{where}: outputs differ from the recorded ones by {diff:.3e} (allowed {allowed:.1e})")
    return ArtifactCheck(entry["name"], entry.get("runtime", entry["format"]), len(x), diff, allowed)


def verify_tree(root: Path, label: str) -> Verdict:
    """Verify an extracted (or never archived) bundle folder: its contents, then each model run in a child process
    on the sample pictures against the recorded outputs."""
    contents = check_contents(root, label)
    checks = tuple(_run_artifact(root, a, contents, label) for a in contents.metadata["artifacts"])
    return Verdict(label, contents.files, checks)


def verify(bundle: Path) -> Verdict:
    """Verify a bundle given as a .tar.gz or a folder; raises UserError with one line on the first problem."""
    label = f"verify: {shown(bundle.name)}"
    if bundle.is_dir():
        return verify_tree(bundle, label)
    if not bundle.is_file():
        raise UserError(f"{label}: no such file or folder")
    with work_folders.temporary("pipeline-verify.") as tmp:
        root = archive.safe_extract(bundle, tmp)
        return verify_tree(root, label)

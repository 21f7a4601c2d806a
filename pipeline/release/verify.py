"""`pipeline verify BUNDLE`: is this bundle whole, well-formed, and do its models still give the recorded outputs?

Steps, each refusing with one line that names the bundle and the file or key: safe extraction (archives only),
SHA256SUMS, metadata.json against its schema, each artifact's sha256 against the metadata, then every artifact loaded
in its own runtime on the bundled sample pictures, compared with the outputs recorded at release time (tolerances in
pipeline/release/samples.py).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.artifact import Artifact, sha256_file
from pipeline.errors import UserError
from pipeline.preprocess import InputSpec
from pipeline.release import archive, checksums, samples
from pipeline.release.schema import validate_metadata


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
            raise UserError(f"{label}: {p.relative_to(root).as_posix()}: refused: not a plain file or folder")


def _read_metadata(root: Path, label: str) -> dict:
    path = root / "metadata.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{label}: metadata.json missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{label}: metadata.json: not valid JSON ({exc})") from None
    return validate_metadata(doc, f"{label}: metadata.json")


def _check_artifact(root: Path, entry: dict, spec: InputSpec, x: np.ndarray, label: str) -> ArtifactCheck:
    where = f"{label}: {entry['file']}"
    path = root / entry["file"]
    if not path.is_file():
        raise UserError(f"{where}: missing")
    if sha256_file(path) != entry["sha256"]:
        raise UserError(f"{where}: sha256 differs from metadata.json")
    try:
        want = np.load(root / entry["sample_outputs"], allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{label}: {entry['sample_outputs']}: unreadable recorded outputs ({exc})") from None
    art = Artifact(entry["name"], str(path), entry["format"], entry["precision"], entry["layout"],
                   tuple(entry["input_shape"]), entry["input_dtype"], entry["input_quantization"],
                   entry["output_quantization"], entry["sha256"])
    try:
        got = samples.outputs(art, x)
    except Exception as exc:  # a runtime that cannot load the file: one line, the runtime's own words
        raise UserError(f"{where}: the {entry['format']} runtime cannot run it ({str(exc).splitlines()[0]})") from None
    if got.shape != want.shape:
        raise UserError(f"{label}: {entry['sample_outputs']}: shape {list(want.shape)}, the artifact gives "
                        f"{list(got.shape)}")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    allowed = samples.allowed_difference(want, entry["output_quantization"])
    if not diff <= allowed:
        raise UserError(f"{where}: outputs differ from the recorded ones by {diff:.3e} (allowed {allowed:.1e})")
    return ArtifactCheck(entry["name"], entry.get("runtime", entry["format"]), len(x), diff, allowed)


def verify_tree(root: Path, label: str) -> Verdict:
    """Verify an extracted (or never archived) bundle folder."""
    _refuse_special_files(root, label)
    files = checksums.check(root, label)
    meta = _read_metadata(root, label)
    spec = InputSpec.from_dict(meta["input"])
    for s in meta["samples"]:
        if not (root / s["file"]).is_file():
            raise UserError(f"{label}: {s['file']}: missing")
    try:
        x = samples.inputs(root, meta["samples"], spec)
    except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise UserError(f"{label}: a sample picture is unreadable ({exc})") from None
    checks = tuple(_check_artifact(root, a, spec, x, label) for a in meta["artifacts"])
    return Verdict(label, files, checks)


def verify(bundle: Path) -> Verdict:
    """Verify a bundle given as a .tar.gz or a folder; raises UserError with one line on the first problem."""
    label = f"verify: {bundle.name}"
    if bundle.is_dir():
        return verify_tree(bundle, label)
    if not bundle.is_file():
        raise UserError(f"{label}: no such file or folder")
    with tempfile.TemporaryDirectory(prefix="pipeline-verify.") as tmp:
        root = archive.safe_extract(bundle, Path(tmp))
        return verify_tree(root, label)

"""`pipeline verify BUNDLE`: is this bundle whole, well-formed, and do its models still give the recorded outputs?

Steps, each refusing with one line that names the bundle and the file or key: safe extraction (archives only),
SHA256SUMS, metadata.json against its schema, each artifact's sha256 against the metadata, the sample pictures and the
recorded outputs (bounded before they are decoded), then every artifact loaded in its own runtime, in a child process,
on the bundled samples (pictures, or one .npy per input), every output compared with the outputs recorded at release
time (each output within its own tolerance, pipeline/release/samples.py; a failure names the output). A runtime that
aborts on a damaged file kills that child, and verify says so in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts.artifact import Artifact, sha256_file
from pipeline.artifacts.preprocess import InputSpec
from pipeline.artifacts.tensors import TensorSpec
from pipeline.core import bounded_json, work_folders
from pipeline.core.errors import UserError, shown
from pipeline.release import archive, checksums, samples
from pipeline.release.metadata_schema import validate_metadata


@dataclass(frozen=True)
class OutputCheck:
    name: str
    max_abs_diff: float
    allowed: float


@dataclass(frozen=True)
class ArtifactCheck:
    name: str
    runtime: str
    samples: int
    outputs: tuple[OutputCheck, ...]

    @property
    def max_abs_diff(self) -> float:
        return max(o.max_abs_diff for o in self.outputs)

    @property
    def allowed(self) -> float:
        return min(o.allowed for o in self.outputs)

    def describe(self) -> str:
        if len(self.outputs) == 1:
            return f"max abs diff {self.max_abs_diff:.2e}, allowed {self.allowed:.2e}"
        return "; ".join(f"{o.name}: max abs diff {o.max_abs_diff:.2e}, allowed {o.allowed:.2e}" for o in self.outputs)


@dataclass(frozen=True)
class Verdict:
    """What a successful verification checked."""

    bundle: str
    files: int
    artifacts: tuple[ArtifactCheck, ...]

    def summary(self) -> list[str]:
        lines = [f"{self.bundle}: {self.files} files match SHA256SUMS; metadata.json is valid"]
        lines += [f"{self.bundle}: {a.name} ({a.runtime}): {a.samples} samples reproduce the recorded outputs "
                  f"({len(a.outputs)} output{'s' if len(a.outputs) > 1 else ''}; {a.describe()})"
                  for a in self.artifacts]
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
    inputs: list[np.ndarray]  # one array per model input: the sample pictures through the reference preprocessing,
    # or the sample_inputs .npy files
    recorded: dict[str, list[np.ndarray]]  # artifact name -> each output's outputs recorded at release time


def _check_model_file(root: Path, entry: dict, label: str) -> None:
    path = root / entry["file"]
    if not path.is_file():
        raise UserError(f"{label}: {shown(entry['file'])}: missing")
    if sha256_file(path) != entry["sha256"]:
        raise UserError(f"{label}: {shown(entry['file'])}: sha256 differs from metadata.json")


def output_entries(entry: dict) -> list[dict]:
    """An artifact's outputs with their recorded-outputs files; a bundle of before the lists: its one output."""
    if "outputs" in entry:
        return entry["outputs"]
    return [{"name": "output", "sample_outputs": entry["sample_outputs"], "quantization": entry["output_quantization"]}]


def _recorded_outputs(root: Path, entry: dict, rows: int, label: str) -> list[np.ndarray]:
    out = []
    for t in output_entries(entry):
        rel = t["sample_outputs"]
        if not (root / rel).is_file():
            raise UserError(f"{label}: {shown(rel)}: missing")
        try:
            out.append(samples.read_outputs(root / rel, rel, (rows,)))
        except samples.SampleError as exc:
            raise UserError(f"{label}: {exc}") from None
    return out


def _sample_inputs(root: Path, meta: dict, label: str) -> list[np.ndarray]:
    """The model inputs of the samples: pictures through the reference preprocessing, or the .npy sample_inputs
    (headers checked against the metadata before reading)."""
    try:
        if "input" in meta:
            return [samples.inputs(root, meta["samples"], InputSpec.from_dict(meta["input"]))]
        xs = []
        for t in meta["sample_inputs"]:
            if not (root / t["file"]).is_file():
                raise UserError(f"{label}: {shown(t['file'])}: missing")
            xs.append(samples.read_array(root / t["file"], t["file"], len(meta["samples"]), t["dtype"], t["shape"],
                                         what="sample input"))
        return xs
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
    for s in meta["samples"] if "input" in meta else ():
        if not (root / s["file"]).is_file():
            raise UserError(f"{label}: {shown(s['file'])}: missing")
    recorded = {}
    for entry in meta["artifacts"]:  # every cheap check before the pictures are decoded
        _check_model_file(root, entry, label)
        recorded[entry["name"]] = _recorded_outputs(root, entry, len(meta["samples"]), label)
    return Contents(files, meta, _sample_inputs(root, meta, label), recorded)


def _artifact(root: Path, entry: dict) -> Artifact:
    """The runtime-facing artifact of a metadata entry: its tensor lists and TFLite tensor indices where the bundle
    has them."""
    def specs(key: str) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec.from_dict(t) for t in entry.get(key, ()))

    indices = {k: [t["tflite_index"] for t in entry.get(k, ()) if "tflite_index" in t] for k in ("inputs", "outputs")}
    extra = {"tflite_tensor_indices": indices} if all(indices.values()) else {}
    return Artifact(entry["name"], str(root / entry["file"]), entry["format"], entry["precision"], entry["layout"],
                    tuple(entry["input_shape"]), entry["input_dtype"], entry["input_quantization"],
                    entry["output_quantization"], entry["sha256"], inputs=specs("inputs"), outputs=specs("outputs"),
                    extra=extra)


def _compare(label: str, where: str, t: dict, got: np.ndarray, want: np.ndarray) -> OutputCheck:
    """One output against its recorded values, within its own tolerance; UserError naming the output otherwise."""
    if got.shape != want.shape:
        raise UserError(f"{label}: {shown(t['sample_outputs'])}: shape {list(want.shape)}, the artifact's output "
                        f"{shown(t['name'])!r} gives {list(got.shape)}")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    allowed = samples.allowed_difference(want, t.get("quantization"))
    if not diff <= allowed:
        raise UserError(f"{where}: output {shown(t['name'])!r} differs from the recorded one by {diff:.3e} "
                        f"(allowed {allowed:.1e})")
    return OutputCheck(t["name"], diff, allowed)


def _run_artifact(root: Path, entry: dict, contents: Contents, label: str) -> ArtifactCheck:
    where = f"{label}: {shown(entry['file'])}"
    xs, want = contents.inputs, contents.recorded[entry["name"]]
    try:
        got = samples.outputs(_artifact(root, entry), xs)
    except samples.ArtifactRunError as exc:  # the runtime refused or died on the file: its own words
        raise UserError(f"{where}: the {entry['format']} runtime cannot run it ({exc})") from None
    if len(got) != len(want):
        raise UserError(f"{where}: gives {len(got)} outputs, metadata.json lists {len(want)}")
    checks = tuple(_compare(label, where, t, g, w)
                   for t, g, w in zip(output_entries(entry), got, want, strict=True))
    return ArtifactCheck(entry["name"], entry.get("runtime", entry["format"]), len(xs[0]), checks)


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

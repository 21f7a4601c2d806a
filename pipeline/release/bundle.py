"""Build a release bundle from a finished run: `<out>/<recipe>-<version>-<target>/` and the same as `.tar.gz`.

Built in a temporary folder beside the destination and renamed into place, so a crash never leaves half a bundle.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.artifacts.artifact import atomic_write_bytes, sha256_file
from pipeline.core import work_folders
from pipeline.core.errors import UserError, free_space, shown
from pipeline.data import eval_split, input_spec, input_tensors, is_pictures, label_names, model_inputs
from pipeline.recipe.config import Config
from pipeline.release import archive, checksums, samples
from pipeline.release import metadata as meta_doc
from pipeline.release import report_copy as bundle_report
from pipeline.release.metadata_schema import validate_metadata
from pipeline.release.model_card import model_card
from pipeline.release.select import candidates, choose


@dataclass(frozen=True)
class Release:
    """Where a bundle landed and what it ships."""

    name: str
    directory: Path
    archive: Path
    artifacts: tuple[str, ...]


def bundle_name(report: dict) -> str:
    return f"{report['recipe']['name']}-{report['recipe']['version']}-{report['target']['name']}"


def _json_bytes(obj: object, sort_keys: bool = False) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n").encode()


def _check_room(out_dir: Path, chosen: list[dict]) -> None:
    """Refuse, before a byte is written, a bundle whose models cannot fit on the disk of `out_dir`: they are written
    twice (the folder and the .tar.gz). One line naming the folder, the room needed and the room free."""
    need = 2 * sum(Path(rec["path"]).stat().st_size for rec in chosen)
    folder, free = free_space(out_dir)
    if free < need:
        raise UserError(f"release: the bundle needs at least {need / 1e6:.1f} MB on the disk of {shown(folder)} "
                        f"({free / 1e6:.1f} MB free); free space there or give --out on a disk with room")


def _copy_models(root: Path, chosen: list[dict]) -> None:
    (root / "models").mkdir(parents=True)
    for rec in chosen:
        dest = root / meta_doc.bundle_file(rec)
        shutil.copyfile(rec["path"], dest)
        if sha256_file(dest) != rec["sha256"]:
            raise UserError(f"release: {rec['path']}: sha256 differs from the manifest's; rerun the pipeline")


def _sample_label(labels: np.ndarray | None, i: int) -> int | None:
    """A sample's class id for the metadata; None for unlabelled data and for targets that are not one class id."""
    if labels is None or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        return None
    return int(labels[i])


def _write_inputs(root: Path, recipe: Config) -> meta_doc.Inputs:
    """The first samples.COUNT evaluation samples into the bundle: PNGs for a picture model, else one .npy per input."""
    split = eval_split(recipe, samples=samples.COUNT)
    if is_pictures(recipe):
        entries = samples.write_pictures(root, split.images[: samples.COUNT],
                                         None if split.labels is None else split.labels[: samples.COUNT])
        return meta_doc.Inputs(input_spec(recipe), entries, [])
    xs = [np.asarray(x[: samples.COUNT]) for x in model_inputs(recipe, split)]
    arrays = samples.write_arrays(root, xs, [t.name for t in input_tensors(recipe)])
    return meta_doc.Inputs(None, [{"label": _sample_label(split.labels, i)} for i in range(len(xs[0]))], arrays)


def _read_inputs(root: Path, inputs: meta_doc.Inputs) -> list[np.ndarray]:
    """The sample inputs read back from the bundle's own files, as verify will read them."""
    if inputs.picture is not None:
        return [samples.inputs(root, inputs.samples, inputs.picture)]
    return [np.load(root / a["file"], allow_pickle=False) for a in inputs.arrays]


def _record_outputs(root: Path, chosen: list[dict], xs: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Each artifact's every output on the samples, written one file per output; returns them by artifact name."""
    (root / samples.OUTPUTS_DIR).mkdir(parents=True)
    recorded = {}
    for rec in chosen:
        art = meta_doc.to_artifact(rec, root / meta_doc.bundle_file(rec))
        try:
            ys = samples.outputs(art, xs)
        except samples.ArtifactRunError as exc:
            raise UserError(f"release: {rec['path']}: the {rec['format']} runtime cannot run it ({exc})") from None
        for k, y in enumerate(ys):
            (root / meta_doc.outputs_file(rec, k)).write_bytes(samples.npy_bytes(y))
        recorded[rec["name"]] = ys
    return recorded


def _fix_modes(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(archive.DIR_MODE if p.is_dir() else archive.FILE_MODE)


def _write_tree(root: Path, run_dir: Path, recipe: Config, ship: str | None) -> tuple[str, ...]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    candidates = choose(report) if ship is None else ship_only(report, ship, run_dir)
    records = meta_doc.manifest_artifacts(manifest)
    chosen = [records[c.name] for c in candidates if c.chosen]
    if not chosen:
        raise UserError(f"release: {run_dir}: no tflite or pte artifact passed its gate with a measured latency")
    _check_room(root.parent.parent, chosen)  # root is OUT/.NAME.PID.x/NAME
    _copy_models(root, chosen)
    inputs = _write_inputs(root, recipe)
    recorded = _record_outputs(root, chosen, _read_inputs(root, inputs))
    where = meta_doc.measured_on(manifest, report, candidates)
    meta = meta_doc.metadata(manifest, report, chosen, candidates, inputs, label_names(recipe), recorded, where)
    validate_metadata(json.loads(_json_bytes(meta)))
    (root / "metadata.json").write_bytes(_json_bytes(meta))
    (root / "VERSIONS.json").write_bytes(_json_bytes(meta_doc.versions(manifest, chosen), sort_keys=True))
    (root / "MODEL_CARD.md").write_text(model_card(manifest, report, meta))
    rep = bundle_report.for_bundle(report, {r["name"]: meta_doc.bundle_file(r) for r in chosen})
    (root / "report.json").write_bytes(_json_bytes(rep, sort_keys=True))
    (root / "report.md").write_text(bundle_report.markdown(rep))
    if (run_dir / "report.png").is_file():
        shutil.copyfile(run_dir / "report.png", root / "report.png")
    _fix_modes(root)
    checksums.write(root)
    (root / checksums.FILE_NAME).chmod(archive.FILE_MODE)
    return tuple(r["name"] for r in chosen)


def ship_only(report: dict, name: str, run_dir: Path) -> list:
    """The candidates with only `name` chosen (a search's choice); it must have passed its gate and been measured."""
    pool = [replace(c, chosen=c.name == name) for c in candidates(report)]
    mine = [c for c in pool if c.name == name]
    if not mine or not mine[0].eligible:
        row = next((r for r in report["artifacts"] if r["name"] == name), None)
        why = "it is not in the run" if row is None else "; ".join(row["violations"]) or "it has no measured latency"
        raise UserError(f"release: {run_dir}: cannot ship {name}: {why}")
    return pool


def build(run_dir: Path, recipe: Config, out_dir: Path, ship: str | None = None) -> Release:
    """Bundle the run in `run_dir` (manifest.json, report.json) into `out_dir`; replaces an older bundle whole.
    `ship` names the one artifact to bundle (a search's choice); without it, select.choose picks per format."""
    report = json.loads((run_dir / "report.json").read_text())
    name = bundle_name(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = work_folders.make(f".{name}.", out_dir)  # a killed release's folder goes at the next one
    try:
        root = work / name
        root.mkdir()
        shipped = _write_tree(root, run_dir, recipe, ship)
        data = archive.tar_gz_bytes(root, name)
        final = out_dir / name
        if final.exists():
            os.replace(final, work / "previous")
        os.replace(root, final)
        atomic_write_bytes(out_dir / f"{name}.tar.gz", data)
        (out_dir / f"{name}.tar.gz").chmod(archive.FILE_MODE)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Release(name, final, out_dir / f"{name}.tar.gz", shipped)

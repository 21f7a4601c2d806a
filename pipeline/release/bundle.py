"""Build a release bundle from a finished run: `<out>/<recipe>-<version>-<target>/` and the same as `.tar.gz`.

Built in a temporary folder beside the destination and renamed into place, so a crash never leaves half a bundle.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.artifacts.artifact import atomic_write_bytes, sha256_file
from pipeline.core import work_folders
from pipeline.core.errors import UserError
from pipeline.data import eval_split, input_spec, label_names
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


def _copy_models(root: Path, chosen: list[dict]) -> None:
    (root / "models").mkdir(parents=True)
    for rec in chosen:
        dest = root / meta_doc.bundle_file(rec)
        shutil.copyfile(rec["path"], dest)
        if sha256_file(dest) != rec["sha256"]:
            raise UserError(f"release: {rec['path']}: sha256 differs from the manifest's; rerun the pipeline")


def _record_outputs(root: Path, chosen: list[dict], entries: list[dict], recipe: Config) -> None:
    x = samples.inputs(root, entries, input_spec(recipe))
    (root / samples.OUTPUTS_DIR).mkdir(parents=True)
    for rec in chosen:
        art = meta_doc.to_artifact(rec, root / meta_doc.bundle_file(rec))
        try:
            y = samples.outputs(art, x)
        except samples.ArtifactRunError as exc:
            raise UserError(f"release: {rec['path']}: the {rec['format']} runtime cannot run it ({exc})") from None
        (root / meta_doc.outputs_file(rec)).write_bytes(samples.npy_bytes(y))


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
    _copy_models(root, chosen)
    split = eval_split(recipe, samples=samples.COUNT)
    entries = samples.write_pictures(root, split.images[: samples.COUNT],
                                     None if split.labels is None else split.labels[: samples.COUNT])
    _record_outputs(root, chosen, entries, recipe)
    where = meta_doc.measured_on(manifest, report, candidates)
    meta = meta_doc.metadata(manifest, report, chosen, candidates, input_spec(recipe), label_names(recipe), entries,
                             where)
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

"""Reading a run's manifest.json: one place that knows how stages and artifacts are recorded in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.artifacts.artifact import Artifact
from pipeline.core import bounded_json
from pipeline.core.errors import PATH_LIMIT, UserError, shown
from pipeline.core.names import HINT as NAME_HINT
from pipeline.core.names import is_safe_name

# What readers of a manifest (the report) rely on: key path -> type. A file without these is not a run manifest.
_TOP = {"created": str, "recipe.name": str, "recipe.path": str, "recipe.sha256": str, "recipe.settings": dict,
        "target.name": str, "target.path": str, "host": dict, "tools": dict, "options": dict, "stages": list}
_STAGE = {"name": str, "cached": bool, "seconds": (int, float), "data": dict, "artifacts": list}
_ARTIFACT = {"name": str, "format": str, "precision": str, "path": str, "sha256": str, "size_bytes": int,
             "layout": str, "input_shape": list}


def _check(doc: Any, required: dict, where: str, path: Path) -> None:
    if not isinstance(doc, dict):
        raise UserError(f"{path}: {where or 'top level'}: expected an object; not a run manifest")
    for key, kind in required.items():
        value: Any = doc
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, kind):
            problem = "missing" if value is None else f"expected {getattr(kind, '__name__', 'a number')}"
            raise UserError(f"{path}: {where}{'.' if where else ''}{key}: {problem}; not a run manifest "
                            "(rerun the pipeline to write one)")


def _name(value: Any, key: str, path: Path) -> None:
    """A manifest field that becomes part of a path (a page named after an artifact) must be one safe component."""
    if not isinstance(value, str) or not is_safe_name(value):
        raise UserError(f"{path}: {key}: {shown(value)!r} is not a name ({NAME_HINT}); not a run manifest this "
                        "pipeline wrote (rerun the pipeline to write one)")


def _file_path(value: Any, key: str, path: Path) -> None:
    """A manifest field that is opened as a file: text a path can hold (no NUL or other control character)."""
    if not isinstance(value, str) or not value or not value.isprintable():
        raise UserError(f"{path}: {key}: {shown(value)!r} is not a file path; not a run manifest this pipeline "
                        "wrote (rerun the pipeline to write one)")


def load(path: Path) -> dict:
    """A run's manifest.json, read within bounds and checked for what readers rely on; UserError naming the file
    and the key otherwise (a garbage file, one without `stages`, one from another tool, a name that would climb out
    of the run folder)."""
    doc = bounded_json.load(path, str(path))
    _check(doc, _TOP, "", path)
    _name(doc["recipe"]["name"], "recipe.name", path)
    _name(doc["target"]["name"], "target.name", path)
    for i, rec in enumerate(doc["stages"]):
        _check(rec, _STAGE, f"stages[{i}]", path)
        for j, art in enumerate(rec["artifacts"]):
            where = f"stages[{i}].artifacts[{j}]"
            _check(art, _ARTIFACT, where, path)
            _name(art["name"], f"{where}.name", path)
            _file_path(art["path"], f"{where}.path", path)
            for key in ("reference", "source"):  # names of other artifacts, looked up, never joined to a path
                extra = art.get("extra") if isinstance(art.get("extra"), dict) else {}
                value = art.get(key) if key == "reference" else extra.get(key)
                if value not in (None, ""):
                    _name(value, f"{where}.{'extra.' if key == 'source' else ''}{key}", path)
    return doc


def stage_data(manifest: dict, name: str) -> dict:
    """The measurements a stage recorded (empty if the stage did not run or was not reached)."""
    for rec in manifest["stages"]:
        if rec["name"] == name:
            return rec["data"]
    return {}


def artifacts(manifest: dict) -> dict[str, dict]:
    """Every artifact the run recorded, by name, in stage order."""
    return {a["name"]: a for rec in manifest["stages"] for a in rec["artifacts"]}


def find_artifact(run_dir: Path, name: str,
                  companions: bool = True) -> tuple[dict, dict[str, Artifact], Artifact]:
    """(manifest, {name: Artifact}, the artifact `name`) of a run folder, its file checked to exist (with
    `companions`, also those of its reference and source, which `debug` opens); UserError naming the file and what
    to do otherwise."""
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{run_dir}: no manifest.json here; give a run folder such as build/runs/<recipe>__<target>")
    manifest = load(manifest_path)
    try:
        arts = {n: Artifact.from_dict(a) for n, a in artifacts(manifest).items()}
    except TypeError as exc:  # a key this pipeline does not write
        raise UserError(f"{manifest_path}: an artifact record this pipeline did not write ({shown(exc)}); rerun "
                        "the pipeline") from None
    if name not in arts:
        raise UserError(f"{manifest_path}: no artifact {shown(repr(name))}; the run has "
                        f"{shown(', '.join(arts), PATH_LIMIT)}")
    art = arts[name]
    others = (art.reference, art.extra.get("source", "")) if companions else ()
    for a in (art, *(arts[n] for n in others if n in arts)):
        if not Path(a.path).is_file():
            raise UserError(f"{shown(a.path, PATH_LIMIT)}: artifact {shown(a.name)} of {manifest_path} is missing; "
                            "rerun the pipeline")
    return manifest, arts, art

"""A run folder is data from outside (copied between machines, handed over): `debug` and `profile` must neither write
outside it nor import code its manifest names (issue 23, cause 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, one_line_refusal
from hypothesis import given
from hypothesis import strategies as st

from pipeline.artifacts import manifest
from pipeline.core.errors import UserError
from pipeline.core.names import is_safe_name
from tests.test_fuzz import FUZZ


def _run_folder(folder: Path, name: str, recipe_path: str = "", recipe_name: str = "user", fmt: str = "tflite",
                sha256: str = "") -> Path:
    """A run folder whose manifest records one artifact `name` (its file exists, its contents do not matter)."""
    folder.mkdir(parents=True, exist_ok=True)
    art_file = folder / "model.bin"
    art_file.write_bytes(b"not a model")
    art = {"name": name, "format": fmt, "precision": "fp32", "path": str(art_file), "sha256": "", "size_bytes": 11,
           "layout": "NHWC", "input_shape": [1, 28, 28, 1]}
    manifest = {"created": "now", "recipe": {"name": recipe_name, "path": recipe_path, "sha256": sha256,
                                             "settings": {}},
                "target": {"name": "host", "path": ""}, "host": {}, "tools": {}, "options": {},
                "stages": [{"name": "to_tflite", "cached": False, "seconds": 0, "data": {}, "artifacts": [art]}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("command, name", [("debug", "../../../ESCAPED"), ("profile", "{abs}/ESCAPED"),
                                           ("debug", "a\nerror: fine")])
def test_an_artifact_name_that_leaves_the_run_folder_is_refused(tmp_path, command, name):
    name = name.format(abs=tmp_path / "elsewhere")
    run = _run_folder(tmp_path / "a" / "b" / "c" / "run", name)
    line = one_line_refusal(cli(command, str(run), name))
    assert "stages[0].artifacts[0].name" in line and "is not a name" in line, line
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - {run / "manifest.json", run / "model.bin"}
    assert not written, written


def test_a_manifest_cannot_make_debug_import_code_it_names(tmp_path):
    marker = tmp_path / "imported"
    evil = tmp_path / "evil.py"
    evil.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
                    "def build(**kw):\n    import torch\n    return torch.nn.Linear(1, 1)\n")
    recipe = tmp_path / "user.toml"
    recipe.write_text(f'[recipe]\nname = "user"\n[model]\nsource = "python"\nentry = "{evil}:build"\n')
    run = _run_folder(tmp_path / "run", "tflite-fp32", recipe_path=str(recipe))
    for command in ("debug", "profile"):
        one_line_refusal(cli(command, str(run), "tflite-fp32" if command == "debug" else "pte-fp32"))
        assert not marker.exists(), f"{command} imported the file the manifest named"
    line = one_line_refusal(cli("debug", str(run), "tflite-fp32"))
    assert line.endswith("pass the recipe it was made with: --recipe PATH"), line
    assert not marker.exists()


def test_a_pte_profile_takes_its_recipe_from_the_manifest_only_when_bundled(tmp_path):
    run = _run_folder(tmp_path / "run", "pte-fp32", recipe_path="/elsewhere/x.toml", recipe_name="user", fmt="pte")
    line = one_line_refusal(cli("profile", str(run), "pte-fp32"))
    assert "is not a bundled recipe" in line and "--recipe PATH" in line, line
    assert not (run / "profile").exists()


def test_a_recipe_of_another_name_than_the_run_is_refused(tmp_path):
    run = _run_folder(tmp_path / "run", "tflite-fp32", recipe_name="user")
    line = one_line_refusal(cli("debug", str(run), "tflite-fp32", "--recipe", "fashion-mnist-mobilenetv2"))
    assert "made by recipe 'user'" in line, line


@FUZZ
@given(st.text(min_size=0, max_size=300), st.sampled_from(["name", "path"]))
def test_any_artifact_name_or_path_in_a_manifest_is_safe_or_refused_inone_line_refusal(tmp_path_factory, value, key):
    run = _run_folder(tmp_path_factory.mktemp("run"), "tflite-fp32")
    doc = json.loads((run / "manifest.json").read_text())
    doc["stages"][0]["artifacts"][0][key] = value
    (run / "manifest.json").write_text(json.dumps(doc))
    try:
        art = manifest.load(run / "manifest.json")["stages"][0]["artifacts"][0]
    except UserError as exc:
        assert len(str(exc).splitlines()) == 1 and len(str(exc)) < 700, str(exc)
        return
    assert is_safe_name(art["name"]) and art["path"].isprintable() and "\x00" not in art["path"]

"""A stage's cache key holds its own code and schema and no other's: editing a tool, a later stage or a table that a
stage does not own leaves the stage cached; editing what it imports reruns it and everything after it.

Keys are computed by the engine's own plan over a copy of the package whose files the tests edit, for the default
recipe on the host target, exactly as `phone-pipeline run --dry-run` computes them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import pipeline.engine.code_version as code_version
from pipeline.engine.cache import Cache
from pipeline.engine.recipes import load_recipe
from pipeline.engine.runner import RunOptions, make_plan
from pipeline.recipe.targets import load_target

RUN_ORDER = ["train", "decompose", "prune", "quantize", "to_executorch", "to_onnx", "to_tflite", "evaluate",
             "benchmark", "on_device", "report"]


@pytest.fixture
def package(tmp_path, monkeypatch) -> Path:
    """A copy of the package that the keys are computed from."""
    copy = tmp_path / "pipeline"
    shutil.copytree(code_version.ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code_version, "ROOT", copy)
    code_version.closure.cache_clear()
    yield copy
    code_version.closure.cache_clear()


def keys(tmp_path: Path) -> dict[str, str]:
    code_version.closure.cache_clear()
    plan = make_plan(load_recipe("fashion-mnist-mobilenetv2"), load_target("host"), RunOptions(build_dir=tmp_path),
                     Cache(tmp_path / "cache", read_only=True))
    return {step.stage.name: step.key for step in plan.steps}


def edit(path: Path, line: str = "# edited") -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [name for name in RUN_ORDER if before[name] != after[name]]


def test_editing_the_search_tool_and_its_schema_leaves_every_stage_cached(package, tmp_path):
    before = keys(tmp_path)
    for module in sorted((package / "search").glob("*.py")):
        edit(module)
    tables = package / "engine" / "recipe_tables.py"
    tables.write_text(tables.read_text().replace('"trials": Field(int, 12,', '"trials": Field(int, 13,'))
    assert '"trials": Field(int, 13,' in tables.read_text()
    assert changed(before, keys(tmp_path)) == []


def test_editing_the_prune_stage_leaves_train_and_decompose_cached(package, tmp_path):
    before = keys(tmp_path)
    prune = package / "stages" / "prune.py"
    prune.write_text(prune.read_text().replace('"round_to": Field(int, 8,', '"round_to": Field(int, 16,'))
    after = keys(tmp_path)
    assert changed(before, after)[:2] == ["prune", "quantize"]
    assert after["train"] == before["train"] and after["decompose"] == before["decompose"]


def test_editing_a_module_only_prune_imports_leaves_train_and_decompose_cached(package, tmp_path):
    before = keys(tmp_path)
    edit(package / "compression" / "pruning.py")
    after = keys(tmp_path)
    assert "prune" in changed(before, after)
    assert after["train"] == before["train"] and after["decompose"] == before["decompose"]


def test_editing_a_module_train_imports_reruns_every_stage_after_it(package, tmp_path):
    before = keys(tmp_path)
    edit(package / "training" / "loop.py")
    assert changed(before, keys(tmp_path)) == RUN_ORDER


def test_a_stage_key_holds_its_own_schema(package, tmp_path):
    before = keys(tmp_path)
    evaluate = package / "stages" / "evaluate.py"
    evaluate.write_text(evaluate.read_text().replace('"fp16": _tolerance(0.995,', '"fp16": _tolerance(0.99,'))
    assert changed(before, keys(tmp_path)) == ["evaluate", "report"]


def test_a_stage_key_holds_no_tool_and_no_door(package):
    """What a stage's code hash covers: never the tools above the engine, the API or the CLI (reached, for example,
    through the package's lazy `from pipeline import run`)."""
    from pipeline.stages import STAGES

    code_version.closure.cache_clear()
    for stage in STAGES:
        files = code_version.closure(code_version.module_file(stage.run.__module__))
        rooms = {p.relative_to(package).parts[0] for p in files}
        assert not rooms & {"api", "cli.py", "__init__.py", "search", "release", "debug", "profile", "engine",
                            "starter", "evidence", "android"}, (stage.name, sorted(rooms))

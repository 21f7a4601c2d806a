"""The package's layers hold: no import runs up a layer, no stage imports another stage, no two rooms import each other.

A room is a top-level sub-package of `pipeline/` (or a root module: the entry points); every stage module is a room
of its own. The order, bottom first, is the one docs/architecture.md draws. Imports are read statically (inside
functions too) with the same parser the cache keys use, so a lazy import cannot hide an upward arrow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.engine.code_version import ROOT, imports_of

LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("artifacts",),
    ("recipe",),
    ("models", "data", "compression", "converters", "runtimes", "training", "measure", "devices", "layers",
     "report", "metrics"),
    ("stages",),
    ("engine",),
    ("debug", "profile", "search", "release", "android", "starter", "evidence"),
    ("cli", "api", "__main__", "__init__", "bootstrap"),
)
LAYER_OF = {room: level for level, rooms in enumerate(LAYERS) for room in rooms}
CONTRACT = "stages.contract"  # the stage contract lives beside the stages; every stage imports it


def room(path: Path, root: Path) -> str:
    """`stages.prune` for a stage module, the first folder below the package otherwise (`core`), or a root
    module's name (`cli`)."""
    parts = path.relative_to(root).with_suffix("").parts
    if parts[0] == "stages" and len(parts) > 1 and parts[1] != "__init__":
        return f"stages.{parts[1]}"
    return parts[0]


def layer(name: str) -> int:
    return LAYER_OF[name.split(".")[0]]


def violations(root: Path = ROOT) -> list[str]:
    """Every import under `root` that breaks a rule, as 'a.py -> b.py: why'."""
    found: list[str] = []
    edges: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        if "native" in path.relative_to(root).parts:
            continue  # device-side programs, run on the device, never imported here
        src = room(path, root)
        if src.split(".")[0] not in LAYER_OF:
            found.append(f"{path.relative_to(root)}: in no layer (add its room to LAYERS and docs/architecture.md)")
            continue
        for target in imports_of(path, root):
            if target == root / "__init__.py":
                continue  # `from pipeline import data` names the package, whose __init__ holds nothing
            dst = room(target, root)
            if dst == src or dst.split(".")[0] not in LAYER_OF:
                continue
            edges.setdefault(src, set()).add(dst)
            where = f"{path.relative_to(root)} -> {target.relative_to(root)}"
            if layer(dst) > layer(src):
                found.append(f"{where}: runs up from {src} to {dst}")
            elif src.startswith("stages.") and dst.startswith("stages.") and dst != CONTRACT:
                found.append(f"{where}: a stage imports another stage (move what they share down a layer)")
    found.extend(f"circle: {' -> '.join(c)}" for c in _circles(edges))
    return found


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One representative path of every cycle between rooms (depth-first search, back edges)."""
    circles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [node, nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return circles


def test_the_package_keeps_its_layers():
    assert violations() == []


def test_the_package_root_holds_the_entry_points_only():
    loose = sorted(p.name for p in ROOT.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "bootstrap.py", "cli.py"]


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "pipeline"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__", "native", "recipes"))
    return copy


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n\ndef _added():\n    {line}\n")


def test_the_layer_check_finds_an_import_that_runs_up(package_copy):
    assert violations(package_copy) == []
    _append(package_copy / "core" / "errors.py", "from pipeline.engine import runner")
    assert any("core/errors.py -> engine/runner.py: runs up from core to engine" in v
               for v in violations(package_copy))


def test_the_layer_check_finds_a_stage_importing_a_stage(package_copy):
    _append(package_copy / "stages" / "decompose.py", "from pipeline.stages.prune import run")
    assert any("stages/decompose.py -> stages/prune.py: a stage imports another stage" in v
               for v in violations(package_copy))


def test_the_layer_check_finds_a_circle_between_rooms_of_one_layer(package_copy):
    _append(package_copy / "data" / "source.py", "from pipeline.compression import pruning")
    _append(package_copy / "compression" / "pruning.py", "from pipeline.data import source")
    assert any(v.startswith("circle:") and "data" in v and "compression" in v for v in violations(package_copy))

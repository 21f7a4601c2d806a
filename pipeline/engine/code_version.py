"""The code a stage's result depends on: its module and every pipeline module it imports, transitively.

Hashing only the stage's own file missed changes in the helpers it calls (a changed pruning routine left stale
pruned models in the cache). Imports are read statically with `ast`, so nothing is imported to compute this.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "pipeline"
ROOT = Path(__file__).resolve().parent.parent  # the pipeline package folder


def module_file(dotted: str, root: Path | None = None) -> Path | None:
    """The source file of pipeline module `dotted` under `root` (default: this package folder), or None."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = (root or ROOT).joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path, root: Path | None = None) -> set[Path]:
    """The pipeline source files `path` imports, at module level or inside functions, read statically. `root` is
    the package folder the dotted names resolve in. The package's own `__init__` is never counted: it holds the
    version and the lazy doors to the API, and `from pipeline import data` depends on `data`, not on them."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in (n for n in names if n != PACKAGE):
            # `from pipeline.x import y`: y may be a module (pipeline/x/y.py) or a name inside pipeline/x
            f = module_file(name, root)
            if f is not None:
                found.add(f)
    return found


@cache
def closure(path: Path) -> frozenset[Path]:
    """`path` and every pipeline source file it imports, directly or not."""
    seen: set[Path] = set()
    todo = [path.resolve()]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(imports_of(p) - seen)
    return frozenset(seen)


def code_hash(path: Path) -> str:
    """sha256 over the sources `path` depends on, in a stable order."""
    h = hashlib.sha256()
    for p in sorted(closure(path)):
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()

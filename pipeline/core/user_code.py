"""The user's own Python code named in a recipe: `entry = "path/to/file.py:function"` or `"package.module:function"`.

Used for model builders (`[model] source = "python"`), data loaders (`[data] dataset = "python"`) and task metrics
(`[evaluate] metric = "my_metric.py:score"`). Relative file paths are taken from the recipe's folder. A file is
imported under a name derived from its absolute path, with its folder first on ``sys.path`` while it imports (so it
can import its siblings); a fresh process resolves the same spec again. `fingerprint` hashes the file and the files it
imports from its own folder, so that changed code re-runs what depends on it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from pipeline.core.errors import PATH_LIMIT, ConfigError, shown

FORMS = "'path/to/file.py:build_fn' or 'package.module:build_fn'"


def split_entry(entry: str, recipe_path: Path, key: str) -> tuple[str, str]:
    target, sep, fn = entry.rpartition(":")
    if not sep or not target or not fn.isidentifier():
        raise ConfigError(recipe_path, key, f"{entry!r} is not of the form {FORMS}")
    return target, fn


def is_file_form(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _module_name(path: Path) -> str:
    return "pipeline_user_model_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]


def _import_file(path: Path, recipe_path: Path, key: str) -> ModuleType:
    name = _module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(recipe_path, key, f"{shown(path, PATH_LIMIT)} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise ConfigError(recipe_path, key, f"{shown(path, PATH_LIMIT)}"
                                                      f":{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # the user's module may fail to import in any way
        sys.modules.pop(name, None)
        raise ConfigError(recipe_path, key, f"importing {shown(path, PATH_LIMIT)}"
                                                      f" failed: {type(exc).__name__}: "
                          f"{(str(exc).splitlines() or [''])[0][:160]}") from None
    finally:
        if sys.path and sys.path[0] == str(path.parent):
            sys.path.pop(0)
    return module


def _import_module(target: str, recipe_path: Path, key: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except Exception as exc:  # ModuleNotFoundError, or anything the module raises while importing
        raise ConfigError(recipe_path, key, f"importing module {target!r} failed: {type(exc).__name__}: "
                          f"{(str(exc).splitlines() or [''])[0][:160]}") from None


def _function(module: ModuleType, fn: str, where: str, recipe_path: Path, key: str) -> Callable:
    obj = getattr(module, fn, None)
    if obj is None or not callable(obj):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise ConfigError(recipe_path, key, f"{where} has no function {fn!r} "
                          f"(it defines: {', '.join(found[:8]) or 'no public function'})")
    return obj


def resolve(spec: dict) -> Callable:
    """The function a spec (from `entry_spec`) names: imports the user's file or module."""
    recipe_path, key = Path(spec.get("recipe", "recipe")), spec.get("key", "model.entry")
    if spec["file"]:
        module = _import_file(Path(spec["file"]), recipe_path, key)
        return _function(module, spec["function"], spec["file"], recipe_path, key)
    module = _import_module(spec["module"], recipe_path, key)
    return _function(module, spec["function"], f"module {spec['module']!r}", recipe_path, key)


def entry_spec(entry: str, recipe_path: Path, key: str) -> dict:
    """`entry` ('file.py:fn' relative to the recipe's folder, or 'package.module:fn') -> a spec that `resolve` and
    `fingerprint` take and that a fresh process can resolve again (ConfigError naming `key` when it is malformed or
    the file is missing; the function itself is looked up by `resolve`)."""
    target, fn = split_entry(entry, recipe_path, key)
    spec = {"entry_text": entry, "function": fn, "file": "", "module": "", "recipe": str(recipe_path), "key": key}
    if is_file_form(target):
        path = Path(target) if Path(target).is_absolute() else recipe_path.parent / target
        if not path.is_file():
            raise ConfigError(recipe_path, key, f"{shown(path, PATH_LIMIT)} is not a file ({FORMS})")
        spec["file"] = str(path.resolve())
    else:
        spec["module"] = target
    return spec


def _local_imports(path: Path, root: Path) -> set[Path]:
    """Files under `root` that `path` imports (read statically, so the key does not depend on what is loaded)."""
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (SyntaxError, ValueError):
        return set()
    stems: list[Path] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            stems += [root.joinpath(*a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = root if node.level == 0 else path.parent.joinpath(*[".."] * (node.level - 1))
            module = base.joinpath(*(node.module or "").split(".")) if node.module else base
            stems += [module] + [module / a.name for a in node.names]
    found = set()
    for stem in stems:
        for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
            if candidate.is_file() and candidate.resolve().is_relative_to(root):
                found.add(candidate.resolve())
    return found


def fingerprint(spec: dict) -> dict:
    """sha256 of the user's file and of the files it imports from its own folder: changed code retrains."""
    if spec["file"]:
        start = Path(spec["file"])
    else:
        found = importlib.util.find_spec(spec["module"])
        if found is None or not found.origin or not found.origin.endswith(".py"):
            return {}
        start = Path(found.origin)
    root = start.parent.resolve()
    seen: set[Path] = set()
    todo = [start.resolve()]
    while todo and len(seen) < 500:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(_local_imports(current, root) - seen)
    return {"code_sha256": {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(seen)}}

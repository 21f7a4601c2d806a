"""A live `nn.Module` as the pipeline carries it: a fingerprint of what decides its results, and a cloudpickle file
named after that fingerprint (pipeline/models/sources/module_object.py rebuilds it in any process).

The fingerprint hashes the module's structure (its repr: layers and their arguments), the source text of every class
in it that is not a library's (a class from a notebook cell or the user's own files, with the functions and classes
of its own module that its methods name), the library classes by name and version, and every tensor of its
state_dict. It never hashes the object's id or a file name, so the same cell run again, in another kernel too, gives
the same fingerprint when the code and the weights are the same.

A metric function given to `run(..., metric=fn)` travels the same way (`store_function`): its fingerprint hashes its
source text, defaults, closure values and the helpers of its own module it names.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import CodeType, ModuleType

import torch
import torch.nn as nn

_LIBRARY_ROOTS = tuple({str(Path(p).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib")
                        if (p := sysconfig.get_paths().get(key))})


def is_library(module: ModuleType | None) -> bool:
    """A module of the standard library, an installed package, or the pipeline itself (importable anywhere)."""
    if module is None or module.__name__ == "__main__":
        return False
    if module.__name__.split(".")[0] in ("torch", "pipeline", "builtins"):
        return True
    file = getattr(module, "__file__", None)
    return file is None or str(Path(file).resolve()).startswith(_LIBRARY_ROOTS)


def _code_text(code: CodeType) -> str:
    """Compiled code without its file name, line numbers or addresses: the same text in any kernel."""
    consts = [_code_text(c) if isinstance(c, CodeType) else repr(c) for c in code.co_consts]
    return repr((code.co_name, code.co_code, code.co_names, code.co_varnames, consts))


def _source(obj: object) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):  # no file to read (a notebook's __main__ has none here): the compiled code stands in
        functions = [obj] if inspect.isfunction(obj) else [f for f in vars(obj).values() if inspect.isfunction(f)]
        return "\n".join(_code_text(f.__code__) for f in functions)


def _class_identity(cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    if is_library(module):
        top = cls.__module__.split(".")[0]
        version = getattr(sys.modules.get(top), "__version__", "")
        return f"{cls.__module__}.{cls.__qualname__}=={version}"
    parts = [_source(cls)]
    names = {name for f in vars(cls).values() if callable(f) and hasattr(f, "__code__")
             for name in f.__code__.co_names}
    for name in sorted(names):  # helpers of the same module the methods call (one level deep)
        helper = getattr(module, name, None)
        if (inspect.isfunction(helper) or inspect.isclass(helper)) and getattr(helper, "__module__", "") == \
                cls.__module__:
            parts.append(_source(helper))
    return f"{cls.__qualname__}\n" + "\n".join(parts)


def fingerprint(model: nn.Module) -> str:
    """sha256 of what decides the module's results (see the module docstring)."""
    h = hashlib.sha256(repr(model).encode())
    for cls in sorted({type(m) for m in model.modules()}, key=lambda c: (c.__module__, c.__qualname__)):
        h.update(_class_identity(cls).encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()


def _value_text(value: object) -> str:
    """A closure's or default's value as text that is the same in any kernel (arrays by their bytes)."""
    if hasattr(value, "tobytes") and hasattr(value, "dtype"):
        return f"{value.dtype}{getattr(value, 'shape', '')}" + hashlib.sha256(value.tobytes()).hexdigest()
    if inspect.isfunction(value):
        return _function_identity(value)
    return repr(value)


def _function_identity(fn: object) -> str:
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    if is_library(module) and module is not None:
        version = getattr(sys.modules.get(module.__name__.split(".")[0]), "__version__", "")
        return f"{module.__name__}.{getattr(fn, '__qualname__', '')}=={version}"
    parts = [getattr(fn, "__qualname__", ""), _source(fn), _value_text(fn.__defaults__), _value_text(fn.__kwdefaults__)]
    parts += [_value_text(cell.cell_contents) for cell in fn.__closure__ or ()]
    for name in sorted(set(fn.__code__.co_names)):  # helpers of the same module it calls (one level deep)
        helper = getattr(module, name, None)
        if (inspect.isfunction(helper) or inspect.isclass(helper)) and helper is not fn and \
                getattr(helper, "__module__", "") == fn.__module__:
            parts.append(_source(helper))
    return "\n".join(parts)


def callable_fingerprint(fn: object) -> str:
    """sha256 of what decides a function's results: its source text (or compiled code), defaults, closure values and
    the helpers of its own module it names; a library function by name and version. Another callable (a
    functools.partial, an object with __call__): its cloudpickle bytes, which hold the same in one kernel."""
    if inspect.isfunction(fn):
        return hashlib.sha256(_function_identity(fn).encode()).hexdigest()
    import cloudpickle

    return hashlib.sha256(cloudpickle.dumps(fn)).hexdigest()


def _dump(obj: object, path: Path, modules: set[str]) -> None:
    """cloudpickle `obj` to `path` atomically; the user's own packages among `modules` travel by value (the run's
    other processes may not import them)."""
    import cloudpickle

    path.parent.mkdir(parents=True, exist_ok=True)
    registered = []
    for name in modules:
        module = sys.modules.get(name)
        top = sys.modules.get(name.split(".")[0])
        if not is_library(module) and module is not None and module.__name__ != "__main__" and top not in registered:
            cloudpickle.register_pickle_by_value(top)
            registered.append(top)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:12]}.", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            cloudpickle.dump(obj, f)
        os.replace(tmp, path)
    finally:
        for top in registered:
            cloudpickle.unregister_pickle_by_value(top)
        if "tmp" in locals() and os.path.exists(tmp):
            os.unlink(tmp)


def store(model: nn.Module, folder: Path) -> tuple[Path, str]:
    """Write `model` to `folder/<fingerprint>.pkl` (once: the same fingerprint is the same module) and return the
    path and the fingerprint. Classes of modules that are not importable everywhere travel by value."""
    digest = fingerprint(model)
    path = folder / f"{digest}.pkl"
    if not path.is_file():
        _dump(model, path, {type(m).__module__ for m in model.modules()})
    return path, digest


def store_function(fn: object, folder: Path) -> tuple[Path, str]:
    """Write `fn` to `folder/<fingerprint>.pkl` (once), as `store` does a module; returns the path and fingerprint."""
    digest = callable_fingerprint(fn)
    path = folder / f"{digest}.pkl"
    if not path.is_file():
        _dump(fn, path, {getattr(fn, "__module__", None) or "__main__"})
    return path, digest

"""Recipe and target files: found by name or path, read as bounded TOML, and changed by dotted-key overrides.

Every problem is one ConfigError line naming the file (and the key).
"""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError, shown

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the pipeline package folder
RECIPES_DIR = PACKAGE_DIR / "recipes"
TARGETS_DIR = PACKAGE_DIR.parent / "targets"

MAX_CONFIG_BYTES = 1 << 20  # a recipe or target is a few KB of text


def read_toml(path: Path) -> dict:
    """Parse a TOML file; anything that is not a readable TOML text file is one line naming the file."""
    try:
        if path.is_dir():
            raise ConfigError(path, "", "is a folder, not a TOML file")
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device would block or never end
            raise ConfigError(path, "", "is not a regular file (a pipe or a device?); give a TOML text file")
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(path, "", "is larger than 1 MB; a recipe or target is a small TOML text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, "", "is not UTF-8 text; a recipe or target is a TOML text file (is it a model "
                          "file? give it as model.path in a recipe)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(path, "", "not valid TOML: nested too deeply") from None


def resolve(name_or_path: str, folder: Path, kind: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in name_or_path:
        return p
    candidate = folder / f"{name_or_path}.toml"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(x.stem for x in folder.glob("*.toml")))
    raise ConfigError(name_or_path, "", f"no such {kind} (known: {known}; or give a path to a .toml file)")


def parse_overrides(items: list[str] | tuple[str, ...], where: str) -> dict[str, Any]:
    """'table.key=VALUE' texts (VALUE in TOML: 3, 0.5, true, "l2", ["ptq"]; a bare word is a string) -> a dict."""
    out: dict[str, Any] = {}
    for item in items:
        if not item.isprintable():  # TOML would end the value at a newline and drop the rest without a word
            raise ConfigError(where, shown(item), "holds a newline or another control character; give one "
                              f"table.key=VALUE per {where}")
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or "." not in key or not all(key.split(".")):
            raise ConfigError(where, item, "an override is table.key=VALUE, e.g. prune.macs_factor=3.0")
        try:
            out[key] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value.strip()
    return out


def apply_overrides(raw: dict, overrides: dict[str, Any], path: Path) -> dict:
    """Set dotted keys in a parsed TOML tree (a copy); the schema then checks them like keys of the file."""
    import copy

    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = raw
        *tables, last = key.split(".")
        for table in tables:
            node = node.setdefault(table, {})
            if not isinstance(node, dict):
                raise ConfigError(path, key, f"{table!r} is not a table")
        node[last] = value
    return raw


def list_configs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.toml"))

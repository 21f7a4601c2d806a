"""Names that become parts of paths (recipe and target names, versions, artifact names): checked in one place.

A name is one path component of letters, digits, '.', '_', '+' and '-', starting with a letter or digit, so that
no name can climb out of the folder it is joined to (``../x``), hide (``.x``) or make a sub-folder (``a/b``).

Example::

    >>> is_safe_name("fashion-mnist_v2.1")
    True
    >>> is_safe_name("../../etc")
    False
"""

from __future__ import annotations

import re

from pipeline.core.errors import UserError, shown

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
HINT = "1-128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit (it becomes part of a path)"


def is_safe_name(value: str) -> bool:
    """True when `value` can be used as one path component as it is."""
    return bool(_SAFE.fullmatch(value)) and ".." not in value


COMPONENT_LIMIT = 255  # bytes in one path component on every file system this runs on (ext4, APFS, tmpfs)


def run_folder_name(recipe: str, target: str) -> str:
    """'<recipe>__<target>', the folder of a run (and of a search): two valid names can together be too long for
    one path component, which is refused here naming the options rather than failing at mkdir."""
    name = f"{recipe}__{target}"
    if len(name.encode()) > COMPONENT_LIMIT:
        raise UserError(f"--recipe/--target: the run folder name {shown(name, 60)!r} would be {len(name.encode())} "
                        f"characters, more than the {COMPONENT_LIMIT} one folder name may have; shorten recipe.name "
                        "or target.name (or give --run-dir)")
    return name

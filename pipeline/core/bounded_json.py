"""JSON from outside, read within bounds: its size and nesting depth are checked before `json.loads` sees it.

`json.loads` recurses once per level, so a document nested 100,000 deep ends in RecursionError, and a huge file is
read whole; an integer of more than 4,300 digits is a ValueError (CPython's limit on `int(str)`), refused likewise.
Our documents (bundle metadata, manifests, cache records) are a few levels deep and far under the limits.

Example::

    >>> loads('[[[1]]]', "x.json", max_depth=2)
    Traceback (most recent call last):
    pipeline.core.errors.UserError: x.json: nested more than 2 levels deep; refused
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import UserError

MAX_BYTES = 64 << 20
MAX_DEPTH = 64
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON `text` (brackets inside strings do not count)."""
    skeleton = np.frombuffer(_STRING.sub("", text).encode(errors="replace"), np.uint8)
    steps = np.isin(skeleton, _OPEN).astype(np.int64) - np.isin(skeleton, _CLOSE)
    return int(np.cumsum(steps).max(initial=0))


def loads(text: str, label: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `text`; UserError naming `label` when it nests deeper than `max_depth` or is not JSON."""
    if nesting_depth(text) > max_depth:
        raise UserError(f"{label}: nested more than {max_depth} levels deep; refused")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{label}: not valid JSON ({exc})") from None
    except ValueError:  # int() refuses more digits than sys.get_int_max_str_digits() (CVE-2020-10735)
        raise UserError(f"{label}: not valid JSON (a number of more than {sys.get_int_max_str_digits():,} "
                        "digits)") from None


def load(path: Path, label: str, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Read and parse the JSON file `path` within bounds; UserError naming `label` otherwise (missing files too)."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise UserError(f"{label}: missing") from None
    except OSError as exc:
        raise UserError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise UserError(f"{label}: more than {max_bytes:,} bytes; refused")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{label}: not valid JSON (not UTF-8: {exc.reason} at byte {exc.start})") from None
    return loads(text, label, max_depth)

"""Read one callgrind dump written with `--dump-instr=yes --dump-line=no`: self instructions per function and per
instruction address, and the dump's total.

The format (valgrind's "Callgrind Format Specification"): `ob=`/`fn=` lines name the object and function the cost
lines after them belong to, names are compressed as `(id) name` on first use and `(id)` after; a cost line is
`address Ir`, the address absolute (hex) or relative to the previous one (`+n`, `-n` in decimal, `*`); a `calls=`
line makes the next cost line the inclusive cost of a call, which is not the caller's own.

    dump = read_dump(Path("callgrind.out.3"))
    dump.total, dump.by_function[("/lib/libfoo.so", "foo_kernel")], dump.by_address[("/lib/libfoo.so", 0x7f0012)]
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"^\((\d+)\)(?: (.*))?$")


@dataclass
class Dump:
    """Self Ir per (object, function) and per (object, address), and the dump's total Ir."""

    total: int = 0
    by_function: Counter = field(default_factory=Counter)
    by_address: Counter = field(default_factory=Counter)


def _name(value: str, table: dict[str, str]) -> str:
    match = _NAME.match(value)
    if not match:
        return value
    key, name = match.groups()
    if name is not None:
        table[key] = name
    return table.get(key, f"({key})")


def _address(token: str, last: int) -> int:
    if token == "*":
        return last
    if token[0] in "+-":
        return last + int(token[1:], 0) * (1 if token[0] == "+" else -1)
    return int(token, 0)


def read_dump(path: Path) -> Dump:
    """Parse `path` (one part, events `Ir` only, positions `instr`)."""
    dump, objects, functions = Dump(), {}, {}
    obj = fn = ""
    last, skip_next = 0, False
    for line in path.read_text().splitlines():
        if not line or line[0] == "#":
            continue
        if line[0].isdigit() or line[0] in "+-*":
            parts = line.split()
            last = _address(parts[0], last)
            cost = int(parts[1]) if len(parts) > 1 else 0
            if not skip_next:
                dump.by_function[(obj, fn)] += cost
                dump.by_address[(obj, last)] += cost
            skip_next = False
        elif line.startswith("ob="):
            obj = _name(line[3:], objects)
        elif line.startswith("fn="):
            fn = _name(line[3:], functions)
        elif line.startswith("cob="):
            _name(line[4:], objects)
        elif line.startswith("cfn="):
            _name(line[4:], functions)
        elif line.startswith("calls="):
            skip_next = True
        elif line.startswith(("summary:", "totals:")):
            dump.total = int(line.split()[1])
    return dump

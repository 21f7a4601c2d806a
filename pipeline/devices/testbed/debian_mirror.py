"""The Debian mirror this machine uses, read from its apt sources so no host name lives in the project."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.core.errors import ToolError

DEB822_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
ONE_LINE_SOURCES = Path("/etc/apt/sources.list")


def debian_mirror(deb822: Path = DEB822_SOURCES, one_line: Path = ONE_LINE_SOURCES) -> str:
    """The URI of the machine's main Debian archive (not its security archive), e.g. `http://HOST/debian`."""
    for uri in _deb822_uris(deb822) + _one_line_uris(one_line):
        # The security archive carries only a few updated packages; debootstrap needs the full archive.
        if "security" not in uri:
            return uri.rstrip("/")
    raise ToolError(f"devices: no Debian mirror found in {deb822} or {one_line}; add one to apt's sources")


def _deb822_uris(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [m.group(1).split()[0] for m in re.finditer(r"^URIs:\s*(\S.*)$", path.read_text(), re.MULTILINE)]


def _one_line_uris(path: Path) -> list[str]:
    if not path.exists():
        return []
    uris = []
    for line in path.read_text().splitlines():
        parts = [p for p in line.split() if not p.startswith("[")]
        if len(parts) >= 3 and parts[0] == "deb":
            uris.append(parts[1])
    return uris

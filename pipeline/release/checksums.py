"""SHA256SUMS in `sha256sum` text format: one `<hex>  <relative path>` line per file, sorted by path."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.artifacts.artifact import sha256_file
from pipeline.core.errors import UserError, shown

FILE_NAME = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def bundle_files(root: Path) -> list[str]:
    """Every file under `root` as a sorted POSIX relative path, SHA256SUMS itself left out."""
    files = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return sorted(rel for rel in files if rel != FILE_NAME)


def text(root: Path) -> str:
    """The SHA256SUMS file for the tree under `root` (`sha256sum -c` accepts it)."""
    return "".join(f"{sha256_file(root / rel)}  {rel}\n" for rel in bundle_files(root))


def write(root: Path) -> None:
    (root / FILE_NAME).write_text(text(root))


def parse(content: str, label: str) -> dict[str, str]:
    """relative path -> sha256 from SHA256SUMS text; a malformed line or a repeated path raises UserError."""
    sums: dict[str, str] = {}
    for i, line in enumerate(content.splitlines(), 1):
        m = _LINE.match(line)
        if not m:
            raise UserError(f"{label}: {FILE_NAME}: line {i}: not '<sha256>  <path>'")
        digest, rel = m.groups()
        if rel in sums:
            raise UserError(f"{label}: {FILE_NAME}: line {i}: {shown(rel)} listed twice")
        sums[rel] = digest
    return sums


def check(root: Path, label: str) -> int:
    """Every file under `root` is listed and matches, and every listed file exists; returns how many were checked."""
    path = root / FILE_NAME
    if not path.is_file():
        raise UserError(f"{label}: {FILE_NAME} missing")
    sums = parse(path.read_text(errors="replace"), label)
    present = bundle_files(root)
    for rel in present:
        if rel not in sums:
            raise UserError(f"{label}: {shown(rel)}: not listed in {FILE_NAME}")
    for rel, digest in sums.items():
        if rel not in present:
            raise UserError(f"{label}: {shown(rel)}: listed in {FILE_NAME} but missing")
        if sha256_file(root / rel) != digest:
            raise UserError(f"{label}: {shown(rel)}: sha256 mismatch")
    return len(sums)

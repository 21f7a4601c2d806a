"""The raw headers of a .tar.gz from outside, walked and bounded before tarfile parses any of them.

CPython's tarfile (3.11.7 here) reads a pax extended header or a GNU long name whole into memory, and parses pax
records with regular expressions whose time is quadratic in a run of digits (CVE-2024-6232) or in records whose
lengths do not add up: a 1 KB .tar.gz declaring a 1 MB pax header keeps a core busy for minutes, a 1.5 GB GNU long
name takes 10 GB. `check` reads the 512-byte header blocks itself (each parsed alone by `TarInfo.frombuf`), skips
member data where tarfile would, and refuses in one line, before tarfile sees the archive:

- an extended header (pax `x` and `g`, Solaris `X`, GNU `L` and `K`) over MAX_EXTENDED_BYTES, or more than
  MAX_CHAIN of them before one member (tarfile recurses once per header of a chain);
- pax records that are not well-formed `LEN KEY=VALUE\\n` to the end of the block, that hold a run of more than
  MAX_DIGIT_RUN digits, or that set `size` or GNU sparse keywords (those move where tarfile reads the next header);
- GNU sparse members (their extension blocks are another unbounded chain) and negative sizes;
- more than MAX_HEADER_BYTES of header blocks and extended data in all.

It stops where tarfile would read no further header: the end-of-archive block, a block that is not a valid header,
and the first member that archive.py refuses from its header alone (too big, too many, too much in all).
"""

from __future__ import annotations

import gzip
import re
import tarfile
from pathlib import Path
from typing import BinaryIO

from pipeline.core.errors import UserError, shown

BLOCK = tarfile.BLOCKSIZE
MAX_EXTENDED_BYTES = 8 << 10  # a path of 4,096 bytes with room for pax times; our own bundles need under 600
MAX_CHAIN = 4  # pax `x`, GNU `L` and `K` before one member is three
MAX_DIGIT_RUN = 32  # pax numbers are 20 digits at most; long runs are what makes tarfile's search quadratic
MAX_HEADER_BYTES = 16 << 20  # 10,000 members, each with a pax header, fit in 16 MB
_EXTENDED = {tarfile.XHDTYPE: "pax extended header", tarfile.XGLTYPE: "pax global header",
             tarfile.SOLARIS_XHDTYPE: "Solaris extended header", tarfile.GNUTYPE_LONGNAME: "GNU long name",
             tarfile.GNUTYPE_LONGLINK: "GNU long link name"}
_PAX = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_DIGIT_RUN = re.compile(rb"[0-9]{%d}" % (MAX_DIGIT_RUN + 1))


def pax_problem(data: bytes, declared: int) -> str | None:
    """Why tarfile must not parse the pax header block `data` (its declared size `declared`), or None.

    >>> pax_problem(b"12 path=abc\\n" + bytes(500), 12) is None
    True
    """
    if _DIGIT_RUN.search(data):
        return f"a run of more than {MAX_DIGIT_RUN} digits"
    if data[declared:].strip(b"\0"):
        return "bytes after its records"  # tarfile would parse them as more records
    pos = 0
    while pos < declared:
        space = data.find(b" ", pos, pos + 8)
        if space < 0 or not data[pos:space].isdigit():
            return f"a malformed record at byte {pos:,}"
        end = pos + int(data[pos:space])
        key, eq, _ = data[space + 1:end - 1].partition(b"=")
        if end <= space + 1 or end > declared or data[end - 1:end] != b"\n" or not eq or not key:
            return f"a malformed record at byte {pos:,}"
        if key == b"size" or key.startswith(b"GNU.sparse."):
            return f"a {shown(key.decode(errors='replace'))!r} record (it moves where the next header is read)"
        pos = end
    return None


def _blocks(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _skip(stream: BinaryIO, count: int) -> bool:
    """Read past `count` bytes; False when the stream ends first."""
    while count > 0:
        got = len(stream.read(min(count, 1 << 20)))
        if not got:
            return False
        count -= got
    return True


def _check_extended(stream: BinaryIO, info: tarfile.TarInfo, offset: int, label: str) -> bool:
    """Refuse an extended header that tarfile must not parse; False when the archive ends inside it."""
    kind = _EXTENDED[info.type]
    if info.size > MAX_EXTENDED_BYTES:
        raise UserError(f"{label}: refused: a {kind} at byte {offset:,} declares {info.size:,} bytes, more than "
                        f"the {MAX_EXTENDED_BYTES:,} a header may have")
    data = stream.read(_blocks(info.size))
    if len(data) < _blocks(info.size):
        return False
    problem = pax_problem(data, info.size) if info.type in _PAX else None
    if problem:
        raise UserError(f"{label}: refused: the {kind} at byte {offset:,} holds {problem}")
    return True


def _data_bytes(info: tarfile.TarInfo) -> int:
    """The stored bytes after this header that tarfile skips (or reads, for an extended header)."""
    skipped = info.type in _EXTENDED or info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
    return _blocks(info.size) if skipped else 0  # tarfile skips nothing after folders, links and devices


def _scan(stream: BinaryIO, label: str, max_members: int, max_member_bytes: int, max_total_bytes: int) -> None:
    offset = members = total = header_bytes = chain = 0
    while True:
        try:
            info = tarfile.TarInfo.frombuf(stream.read(BLOCK), "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            return  # end of archive, truncated or not a header: tarfile stops (or refuses) here too
        if info.size < 0 or info.type == tarfile.GNUTYPE_SPARSE:
            raise UserError(f"{label}: {shown(info.name)}: refused: a sparse file or a negative size")
        extended = info.type in _EXTENDED
        chain = chain + 1 if extended else 0
        if chain > MAX_CHAIN:
            raise UserError(f"{label}: refused: more than {MAX_CHAIN} extended headers in a row at byte {offset:,}")
        if extended and not _check_extended(stream, info, offset, label):
            return
        header_bytes += BLOCK + (_data_bytes(info) if extended else 0)
        if header_bytes > MAX_HEADER_BYTES:
            raise UserError(f"{label}: refused: more than {MAX_HEADER_BYTES:,} bytes of tar headers")
        if not extended:
            members, total = members + 1, total + info.size
            if members > max_members or info.size > max_member_bytes or total > max_total_bytes:
                return  # archive.py refuses this member from its header; tarfile reads nothing after it
            if not _skip(stream, _data_bytes(info)):
                return
        offset += BLOCK + _data_bytes(info)


def check(archive: Path, label: str, max_members: int, max_member_bytes: int, max_total_bytes: int) -> None:
    """Walk the headers of the .tar.gz `archive` as tarfile would and refuse, in one UserError naming `label`, any
    that tarfile could not parse in bounded time and memory (see the module's docstring). gzip errors propagate."""
    with gzip.open(archive, "rb") as stream:
        _scan(stream, label, max_members, max_member_bytes, max_total_bytes)

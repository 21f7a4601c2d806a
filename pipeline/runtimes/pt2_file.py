"""Byte-reproducible .pt2 files.

torch.export.save writes `<archive>/.data/serialization_id`: 40 digits, the last 20 of which are random on every save,
so two runs of the same recipe gave different `pt2-*` files while everything else matched. The first 20 digits are
derived from the archive's records; we replace the random half with digits derived from the same first half, in
place (the record is stored uncompressed, fixed length), and correct its CRC-32 in the local and central headers.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from pathlib import Path

_RECORD = ".data/serialization_id"
_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"


def make_reproducible(path: Path) -> None:
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        info = next((i for i in zf.infolist() if i.filename.endswith("/" + _RECORD)), None)
        if info is None or info.compress_type != zipfile.ZIP_STORED or info.file_size != 40:
            return  # another torch version's layout: leave the file as torch wrote it
        old = zf.read(info)
    if not old.isdigit():
        return
    new = old[:20] + str(int(hashlib.sha256(old[:20]).hexdigest(), 16) % 10**20).zfill(20).encode()
    crc = zlib.crc32(new) & 0xFFFFFFFF
    name = info.filename.encode()
    blob = path.read_bytes()
    if blob[info.header_offset : info.header_offset + 4] != _LOCAL:
        return
    name_len, extra_len = struct.unpack("<HH", blob[info.header_offset + 26 : info.header_offset + 30])
    central = blob.rfind(_CENTRAL)  # this record's central directory entry: the file name sits at offset 46
    while central != -1:
        n = struct.unpack("<H", blob[central + 28 : central + 30])[0]
        if blob[central + 46 : central + 46 + n] == name:
            break
        central = blob.rfind(_CENTRAL, 0, central)
    if central == -1:
        return
    with path.open("r+b") as f:
        for at, data in ((info.header_offset + 14, struct.pack("<I", crc)), (central + 16, struct.pack("<I", crc)),
                         (info.header_offset + 30 + name_len + extra_len, new)):
            f.seek(at)
            f.write(data)

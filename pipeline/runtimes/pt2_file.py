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
    with path.open("r+b") as f:
        f.seek(info.header_offset)
        header = f.read(30)
        if header[:4] != _LOCAL:
            return
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + 14)
        f.write(struct.pack("<I", crc))
        f.seek(info.header_offset + 30 + name_len + extra_len)
        f.write(new)
        blob = path.read_bytes()
        # the central directory entry of this record: signature ... file name at offset 46
        at = blob.rfind(_CENTRAL)
        while at != -1:
            n = struct.unpack("<H", blob[at + 28 : at + 30])[0]
            if blob[at + 46 : at + 46 + n] == name:
                f.seek(at + 16)
                f.write(struct.pack("<I", crc))
                break
            at = blob.rfind(_CENTRAL, 0, at)

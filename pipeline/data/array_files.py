"""Arrays read from .npy files and .npz archives: headers checked before any data is touched, data memory-mapped,
nothing ever unpickled.

An `ArrayRef` names one array: a file, the byte offset where its data start, its shape, dtype and order. A `.npy`
file and an uncompressed (stored) `.npz` member are mapped where they lie. A compressed member cannot be mapped: it
is decompressed once into the array cache (pipeline/data/array_cache.py) and mapped from there. Before a member is
decompressed its declared size is checked: more than MAX_RATIO times its compressed size (when over RATIO_FLOOR
bytes) is refused as a zip bomb, and so is more than the free disk space; decompression never goes past the declared
size (zipfile stops there) and a member whose bytes disagree with its array header is refused.

Reading a whole array (the finite-value scan, the copy of a seeded split) goes through a private map in blocks of
BLOCK_BYTES and drops each block's pages afterwards (madvise), so resident memory stays near one block whatever the
array's size.

Example::

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "x.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    >>> ref = npy_file(folder / "x.npy")
    >>> ref.shape, str(ref.dtype), ref.open()[2].tolist()
    ((3, 2), 'float32', [4.0, 5.0])
"""

from __future__ import annotations

import hashlib
import lzma
import mmap
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pipeline.core.errors import DataError
from pipeline.data import array_cache

BLOCK_BYTES = 8 << 20
MAX_RATIO = 200  # deflate reaches ~1030:1 on zeros; real arrays compress by 1.1-20x
RATIO_FLOOR = 64 << 20  # smaller members may compress as well as they like
MAX_MEMBERS = 4096
MAX_HEADER = 10_000  # bytes of an .npy header (numpy's own default limit)
KINDS = {"b": "bool", "i": "integer", "u": "unsigned integer", "f": "floating point", "U": "text"}
# what reading a damaged archive member raises: zipfile's own error, the decompressors', a short read
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, NotImplementedError, RuntimeError, OSError, EOFError,
              ValueError, struct.error)
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip member's local file header (30 bytes)


@dataclass(frozen=True)
class ArrayRef:
    """One array in a file: `label` names it in messages ("x.npy", "set.npz:labels")."""

    label: str
    path: Path
    offset: int  # where the data start (a compressed member: 0, see `member`)
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool = False
    member: str = ""  # a compressed .npz member's name: the data are in the archive, not at `offset`

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def stamp(self) -> str:
        """What identifies the bytes: path, size, modification time, offset, member."""
        st = self.path.stat()
        return f"{self.path}\0{st.st_size}\0{st.st_mtime_ns}\0{self.offset}\0{self.member}"

    def open(self) -> np.ndarray:
        """The array, memory-mapped read-only (a compressed member is decompressed into the array cache first)."""
        return mapped(self)[0]


def refuse_dtype(label: str, dtype: np.dtype) -> None:
    """DataError naming `label` for a dtype no array file may hold (objects, records, non-native byte order)."""
    if dtype.hasobject:
        raise DataError(label, "holds Python objects (dtype object), which are never unpickled; save plain numeric "
                        "arrays (np.save of a float or integer array)")
    if dtype.kind not in KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(label, f"has dtype {dtype}; only bool, integer and floating-point arrays are read (and text "
                        "for class names)")
    if not dtype.isnative and dtype.itemsize > 1 and dtype.kind != "U":
        raise DataError(label, f"is stored in non-native byte order ({dtype.str}); save it as "
                        f"a.astype('{dtype.newbyteorder('=').str}')")


def read_header(f: BinaryIO, label: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, header length) of the .npy data starting at `f`'s position."""
    start = f.tell()
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_HEADER)
        else:
            raise ValueError(f"npy format version {version[0]}.{version[1]} is not read")
    except Exception as exc:  # a damaged header: numpy's parser raises whatever its tokenizer or ast does
        first = (str(exc).splitlines() or [""])[0][:160]
        raise DataError(label, f"is not a readable .npy array ({first}); save it with numpy.save") from None
    refuse_dtype(label, dtype)
    if len(shape) == 0:
        raise DataError(label, "is a single number; an array needs one row per sample (N first)")
    return tuple(int(s) for s in shape), bool(fortran), dtype, f.tell() - start


def npy_file(path: Path, label: str | None = None) -> ArrayRef:
    """The array of a .npy file, its header checked (object arrays, dtype, size against the file's length)."""
    label = label or path.name
    try:
        with path.open("rb") as f:
            shape, fortran, dtype, header = read_header(f, label)
            size = f.seek(0, 2)
    except OSError as exc:
        raise DataError(label, f"cannot be read ({exc.strerror or exc})") from None
    ref = ArrayRef(label, path, header, shape, dtype, fortran)
    if header + ref.nbytes > size:
        raise DataError(label, f"is truncated: its header declares {ref.nbytes} bytes of data, the file holds "
                        f"{size - header}")
    return ref


def _stored_offset(f: BinaryIO, info: zipfile.ZipInfo, label: str) -> int:
    """Where a stored member's bytes start in the archive (after its local header, name and extra field)."""
    f.seek(info.header_offset)
    raw = f.read(_LOCAL_HEADER.size)
    if len(raw) != _LOCAL_HEADER.size or raw[:4] != b"PK\x03\x04":
        raise DataError(label, "is damaged (a member's local header is missing); save it again with numpy.savez")
    fields = _LOCAL_HEADER.unpack(raw)
    return info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]


def _member(zf: zipfile.ZipFile, f: BinaryIO, info: zipfile.ZipInfo, path: Path, size: int) -> ArrayRef:
    label = f"{path.name}:{info.filename[:-4]}"
    if info.flag_bits & 0x1:
        raise DataError(label, "is encrypted; save the arrays with numpy.savez")
    if info.compress_type == zipfile.ZIP_STORED:
        start = _stored_offset(f, info, label)
        f.seek(start)
        shape, fortran, dtype, header = read_header(f, label)
        ref = ArrayRef(label, path, start + header, shape, dtype, fortran)
        if header + ref.nbytes != info.file_size or start + info.file_size > size:
            raise DataError(label, f"declares {ref.nbytes} bytes of data but the member holds "
                            f"{info.file_size - header}; save it again with numpy.savez")
        return ref
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(1, info.compress_size):
        raise DataError(label, f"declares {info.file_size} bytes from {info.compress_size} compressed (more than "
                        f"{MAX_RATIO}:1): refused as a zip bomb; save real data with numpy.savez")
    try:
        with zf.open(info) as member:
            shape, fortran, dtype, header = read_header(member, label)
    except ZIP_ERRORS as exc:
        raise DataError(label, f"cannot be decompressed ({type(exc).__name__}); save it again") from None
    ref = ArrayRef(label, path, 0, shape, dtype, fortran, member=info.filename)
    if header + ref.nbytes != info.file_size:
        raise DataError(label, f"declares {ref.nbytes} bytes of data but the member holds "
                        f"{info.file_size - header}; save it again with numpy.savez")
    return ref


def npz_members(path: Path) -> dict[str, ArrayRef]:
    """The arrays of an .npz archive by key (the member name without .npy), each header checked, nothing unpickled
    and nothing decompressed but the headers."""
    try:
        with path.open("rb") as f, zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise DataError(path.name, f"holds {len(infos)} members (at most {MAX_MEMBERS} are read)")
            size = f.seek(0, 2)
            bad = [i.filename for i in infos if not i.filename.endswith(".npy") or i.is_dir()]
            if bad:
                raise DataError(path.name, f"holds {bad[0][:80]!r}, which is not an array (.npy member); "
                                "save the arrays with numpy.savez")
            return {i.filename[:-4]: _member(zf, f, i, path, size) for i in infos}
    except DataError:
        raise
    except ZIP_ERRORS as exc:
        raise DataError(path.name, f"is not a readable .npz archive ({type(exc).__name__}: "
                        f"{(str(exc).splitlines() or [''])[0][:120]}); save it with numpy.savez") from None


def _extract(ref: ArrayRef, folder: Path) -> None:
    if array_cache.free_bytes() < ref.nbytes + (64 << 20):
        raise DataError(ref.label, f"needs {ref.nbytes >> 20} MB decompressed and the array cache has "
                        f"{array_cache.free_bytes() >> 20} MB free; free space or save the .npz uncompressed "
                        "(numpy.savez), which is read in place")
    try:
        with zipfile.ZipFile(ref.path) as zf, zf.open(ref.member) as src, (folder / "array.npy").open("wb") as out:
            while chunk := src.read(BLOCK_BYTES):
                out.write(chunk)
    except ZIP_ERRORS as exc:
        raise DataError(ref.label, f"cannot be decompressed ({type(exc).__name__}: {str(exc)[:100]}); "
                        "save it again") from None


def extracted(ref: ArrayRef) -> ArrayRef:
    """A compressed member as a .npy file in the array cache (decompressed on first use), else `ref` itself."""
    if not ref.member:
        return ref
    key = "npz-" + hashlib.sha256(ref.stamp().encode()).hexdigest()[:24]
    folder = array_cache.entry(key, lambda tmp: _extract(ref, tmp))
    out = npy_file(folder / "array.npy", ref.label)
    if out.shape != ref.shape or out.dtype != ref.dtype:
        raise DataError(ref.label, "changed while it was read; run again")
    return out


def mapped(ref: ArrayRef) -> tuple[np.ndarray, mmap.mmap | None]:
    """The array on a private map, and the map (None for an empty array): `drop(map)` frees the pages it has read.
    The map closes when the last view of it goes."""
    ref = extracted(ref)
    if ref.nbytes == 0:
        return np.zeros(ref.shape, ref.dtype), None
    with ref.path.open("rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.ndarray(ref.shape, ref.dtype, buffer=mm, offset=ref.offset, order="F" if ref.fortran else "C"), mm


def drop(mm: mmap.mmap | None) -> None:
    """Let the kernel take back the pages a private map has read (they stay in the page cache)."""
    if mm is not None and hasattr(mm, "madvise"):
        mm.madvise(mmap.MADV_DONTNEED)


def _member_blocks(ref: ArrayRef, size: int) -> Iterator[np.ndarray]:
    """A compressed member's values streamed `size` bytes at a time (a damaged member: DataError)."""
    try:
        with zipfile.ZipFile(ref.path) as zf, zf.open(ref.member) as src:
            read_header(src, ref.label)
            left = ref.nbytes
            while left > 0:
                raw = src.read(min(left, size))
                if not raw or len(raw) % ref.dtype.itemsize:
                    raise DataError(ref.label, "ends before its declared data; save it again")
                left -= len(raw)
                yield np.frombuffer(raw, ref.dtype)
    except ZIP_ERRORS as exc:
        raise DataError(ref.label, f"cannot be decompressed ({type(exc).__name__}); save it again") from None


def _flat_blocks(ref: ArrayRef) -> Iterator[np.ndarray]:
    """The array's values in storage order, BLOCK_BYTES at a time (a compressed member streamed, nothing written)."""
    step = max(1, BLOCK_BYTES // ref.dtype.itemsize)
    if ref.member:
        yield from _member_blocks(ref, step * ref.dtype.itemsize)
        return
    array, mm = mapped(ref)
    flat = array.ravel(order="K")  # a view: the data are contiguous in storage order
    for start in range(0, flat.size, step):
        yield flat[start:start + step]
        drop(mm)


def read_all(ref: ArrayRef) -> np.ndarray:
    """A small array (labels, class names) read whole into memory; a compressed member is streamed, not extracted."""
    if not ref.member:
        return np.array(ref.open())
    flat = np.concatenate([*_member_blocks(ref, BLOCK_BYTES), np.zeros(0, ref.dtype)])
    return flat.reshape(ref.shape, order="F" if ref.fortran else "C")


_FINITE: dict[str, tuple[tuple[int, ...], float] | None] = {}  # per process: stamp -> first non-finite (index, value)


def first_non_finite(ref: ArrayRef) -> tuple[tuple[int, ...], float] | None:
    """(index, value) of the first NaN or infinite value in storage order, or None (integer arrays: None at once)."""
    if ref.dtype.kind != "f":
        return None
    stamp = ref.stamp()
    if stamp not in _FINITE:
        _FINITE[stamp] = None
        seen = 0
        for block in _flat_blocks(ref):
            bad = ~np.isfinite(block)
            if bad.any():
                at = int(np.argmax(bad))
                index = np.unravel_index(seen + at, ref.shape, order="F" if ref.fortran else "C")
                _FINITE[stamp] = tuple(int(i) for i in index), float(block[at])
                break
            seen += block.size
    return _FINITE[stamp]


def check_finite(ref: ArrayRef) -> None:
    """DataError naming the array and the index of its first NaN or infinite value."""
    found = first_non_finite(ref)
    if found is not None:
        index, value = found
        raise DataError(ref.label, f"holds {value} at index {list(index)}; replace or drop the non-finite values")

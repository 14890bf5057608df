"""A fast reader of a GGUF file's header: key/values and tensor descriptors, memory-mapped.

Why not ``gguf.GGUFReader`` itself: it builds a numpy view for every element of every array, so
a model with a 262k-token vocabulary (Gemma 3) takes ~15 s to open; this reader walks the same
bytes with :mod:`struct` over an :mod:`mmap` and decodes arrays only when asked (~0.2 s for that
file). It reads the header only, never the tensor data. Value types, tensor types and their block
sizes come from the ``gguf`` package, so new quantization types need only a newer ``gguf``.

Format (GGUF v2/v3): magic ``GGUF``, u32 version, u64 tensor count, u64 kv count, the kvs
(string key, u32 value type, value), the tensor infos (string name, u32 n_dims, u64 dims[n_dims],
u32 ggml type, u64 offset relative to the data section), padding to ``general.alignment``
(default 32), the tensor data.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

#: struct format and numpy dtype of every fixed-size GGUF value type.
_SCALARS: dict[int, tuple[str, str]] = {
    GGUFValueType.UINT8: ("B", "u1"),
    GGUFValueType.INT8: ("b", "i1"),
    GGUFValueType.UINT16: ("H", "u2"),
    GGUFValueType.INT16: ("h", "i2"),
    GGUFValueType.UINT32: ("I", "u4"),
    GGUFValueType.INT32: ("i", "i4"),
    GGUFValueType.FLOAT32: ("f", "f4"),
    GGUFValueType.BOOL: ("?", "?"),
    GGUFValueType.UINT64: ("Q", "u8"),
    GGUFValueType.INT64: ("q", "i8"),
    GGUFValueType.FLOAT64: ("d", "f8"),
}


class GGUFFormatError(ValueError):
    """The bytes are not a GGUF file this reader understands."""


def _f32(value: float) -> float:
    """A float32 as the shortest Python float that prints like it (1e-06, not 9.99e-07)."""
    return float(str(np.float32(value)))


@dataclass
class LazyArray:
    """A GGUF array value, located but not decoded (vocabularies have 100k+ entries)."""

    item_type: int
    count: int
    start: int  # offset of the first item
    end: int  # offset just past the last item
    #: For string arrays: offset of each item's u64 length prefix.
    string_offsets: list[int] | None = None
    #: For arrays of arrays (rare): the items, decoded.
    nested: list[Any] | None = None

    def __len__(self) -> int:
        return self.count


@dataclass
class RawTensor:
    name: str
    type_id: int
    shape: list[int]  # GGUF order: ne0 (the contiguous dimension) first
    offset: int  # relative to the data section

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        try:
            return GGMLQuantizationType(self.type_id).name
        except ValueError:
            return f"unknown({self.type_id})"

    def n_bytes_from_type(self) -> int | None:
        """Size from the type's block layout, or None when ``gguf`` does not know the type."""
        try:
            block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(self.type_id)]
        except (ValueError, KeyError):
            return None
        return self.n_elements * type_size // block_size


@dataclass
class GGUFHeader:
    """What :func:`open_header` parsed. Valid while the ``with`` block that made it is open."""

    path: Path
    version: int
    endian: Literal["<", ">"]
    file_size: int
    kv: dict[str, Any] = field(default_factory=dict)
    kv_types: dict[str, int] = field(default_factory=dict)
    tensors: list[RawTensor] = field(default_factory=list)
    alignment: int = DEFAULT_ALIGNMENT
    data_offset: int = 0
    _mm: mmap.mmap | None = field(default=None, repr=False)

    # -- decoding arrays on demand ------------------------------------------------------------

    def _buffer(self) -> mmap.mmap:
        if self._mm is None:
            raise ValueError("GGUF header used after its file was closed")
        return self._mm

    def _string_at(self, offset: int) -> str:
        mm = self._buffer()
        (n,) = struct.unpack_from(self.endian + "Q", mm, offset)
        return bytes(mm[offset + 8 : offset + 8 + n]).decode("utf-8", errors="replace")

    def array_values(self, array: LazyArray) -> list[Any]:
        """Every item of ``array`` as Python values."""
        if array.nested is not None:
            return array.nested
        if array.string_offsets is not None:
            return [self._string_at(off) for off in array.string_offsets]
        dtype = _SCALARS[array.item_type][1]
        mm = self._buffer()
        data = np.frombuffer(
            mm,
            dtype=np.dtype(dtype).newbyteorder(self.endian),
            count=array.count,
            offset=array.start,
        )
        if array.item_type == GGUFValueType.FLOAT32:
            return [_f32(v) for v in data.tolist()]
        values: list[Any] = data.tolist()
        return values

    def array_item(self, array: LazyArray, index: int) -> Any:
        """One item of ``array`` (raises IndexError when out of range)."""
        if not 0 <= index < array.count:
            raise IndexError(index)
        if array.nested is not None:
            return array.nested[index]
        if array.string_offsets is not None:
            return self._string_at(array.string_offsets[index])
        fmt, _ = _SCALARS[array.item_type]
        size = struct.calcsize(fmt)
        (value,) = struct.unpack_from(self.endian + fmt, self._buffer(), array.start + index * size)
        return _f32(value) if array.item_type == GGUFValueType.FLOAT32 else value

    def value(self, key: str) -> Any:
        """The value of ``key`` with arrays decoded, or None when absent."""
        v = self.kv.get(key)
        if isinstance(v, LazyArray):
            return self.array_values(v)
        return v


class _Cursor:
    """Sequential reads over the mmap with bounds checks that name what was being read."""

    def __init__(self, mm: mmap.mmap, endian: Literal["<", ">"], size: int) -> None:
        self.mm = mm
        self.endian = endian
        self.size = size
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GGUFFormatError(
                f"truncated or corrupt header: {what} at byte {self.pos} needs {n} bytes, "
                f"file has {self.size}"
            )

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size, what)
        (value,) = struct.unpack_from(self.endian + fmt, self.mm, self.pos)
        self.pos += size
        return value

    def string(self, what: str) -> str:
        n = self.unpack("Q", what)
        self.need(n, what)
        raw = bytes(self.mm[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self, what: str) -> int:
        start = self.pos
        n = self.unpack("Q", what)
        self.need(n, what)
        self.pos += n
        return start

    def value(self, vtype: int, what: str) -> Any:
        scalar = _SCALARS.get(vtype)
        if scalar is not None:
            value = self.unpack(scalar[0], what)
            return _f32(value) if vtype == GGUFValueType.FLOAT32 else value
        if vtype == GGUFValueType.STRING:
            return self.string(what)
        if vtype == GGUFValueType.ARRAY:
            return self.array(what)
        raise GGUFFormatError(f"unknown value type {vtype} in {what}")

    def array(self, what: str) -> LazyArray:
        item_type = self.unpack("I", what)
        count = self.unpack("Q", what)
        start = self.pos
        scalar = _SCALARS.get(item_type)
        if scalar is not None:
            n_bytes = struct.calcsize(scalar[0]) * count
            self.need(n_bytes, what)
            self.pos += n_bytes
            return LazyArray(item_type, count, start, self.pos)
        if item_type == GGUFValueType.STRING:
            # Walk the length prefixes; this is the only per-item work done up front.
            offsets: list[int] = []
            append = offsets.append
            unpack_from = struct.unpack_from
            fmt = self.endian + "Q"
            mm, pos, size = self.mm, self.pos, self.size
            for _ in range(count):
                if pos + 8 > size:
                    self.pos = pos
                    self.need(8, what)
                (n,) = unpack_from(fmt, mm, pos)
                append(pos)
                pos += 8 + n
            self.pos = pos
            self.need(0, what)
            if pos > size:
                raise GGUFFormatError(f"truncated or corrupt header: {what} runs past the file end")
            return LazyArray(item_type, count, start, pos, string_offsets=offsets)
        if item_type == GGUFValueType.ARRAY:
            nested = [self.array(what) for _ in range(count)]
            return LazyArray(item_type, count, start, self.pos, nested=nested)
        raise GGUFFormatError(f"unknown array item type {item_type} in {what}")


def _parse(mm: mmap.mmap, path: Path, size: int) -> GGUFHeader:
    if size < 24 or mm[:4] != MAGIC:
        head = bytes(mm[:4])
        raise GGUFFormatError(f"bad magic {head!r} (expected {MAGIC!r})")
    (version_le,) = struct.unpack_from("<I", mm, 4)
    # A version read as 0 in its low half means the file was written big-endian.
    endian: Literal["<", ">"] = ">" if version_le & 0xFFFF == 0 else "<"
    cur = _Cursor(mm, endian, size)
    cur.pos = 4
    version = cur.unpack("I", "version")
    if version not in SUPPORTED_VERSIONS:
        raise GGUFFormatError(f"unsupported GGUF version {version} (supported: 2, 3)")
    n_tensors = cur.unpack("Q", "tensor count")
    n_kv = cur.unpack("Q", "key/value count")
    # Sanity limits so that a corrupt count fails fast instead of looping for ages.
    if n_kv > size // 8 or n_tensors > size // 8:
        raise GGUFFormatError(f"corrupt header: {n_kv} key/values, {n_tensors} tensors")
    header = GGUFHeader(path=path, version=version, endian=endian, file_size=size, _mm=mm)
    for i in range(n_kv):
        key = cur.string(f"key #{i}")
        vtype = cur.unpack("I", f"type of {key}")
        header.kv[key] = cur.value(vtype, key)
        header.kv_types[key] = vtype
    for i in range(n_tensors):
        name = cur.string(f"tensor #{i} name")
        n_dims = cur.unpack("I", f"tensor {name} n_dims")
        if n_dims > 8:
            raise GGUFFormatError(f"corrupt tensor info: {name} has {n_dims} dimensions")
        shape = [cur.unpack("Q", f"tensor {name} shape") for _ in range(n_dims)]
        type_id = cur.unpack("I", f"tensor {name} type")
        offset = cur.unpack("Q", f"tensor {name} offset")
        header.tensors.append(RawTensor(name, type_id, shape, offset))
    alignment = header.kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFFormatError(f"invalid general.alignment {alignment!r}")
    header.alignment = alignment
    header.data_offset = -(-cur.pos // alignment) * alignment
    return header


@contextmanager
def open_header(path: Path) -> Iterator[GGUFHeader]:
    """Parse ``path``'s GGUF header; the result can decode arrays until the block exits.

    Raises :class:`GGUFFormatError` for bytes that are not GGUF and :class:`OSError` for a file
    that cannot be read.
    """
    path = Path(path)
    with path.open("rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise GGUFFormatError("empty file")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        header = _parse(mm, path, size)
        try:
            yield header
        finally:
            header._mm = None
    finally:
        mm.close()


def has_gguf_magic(path: Path) -> bool:
    """Whether ``path`` starts with the GGUF magic (reads 4 bytes)."""
    try:
        with Path(path).open("rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False

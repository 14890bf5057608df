"""Reading a Hugging Face checkpoint folder: config.json and safetensors, one tensor at a time.

The safetensors format is an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range, then the raw data. Reading it through ``numpy.memmap``
keeps memory to the tensor in hand and handles bfloat16, which numpy has no dtype for (the
``safetensors`` package's numpy API refuses it).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ocillm.errors import BuildError

Array = npt.NDArray[Any]

# safetensors dtype -> (numpy dtype of the stored bits, whether the bits are bfloat16)
_DTYPES: dict[str, tuple[npt.DTypeLike, bool]] = {
    "F32": (np.float32, False),
    "F16": (np.float16, False),
    "BF16": (np.uint16, True),
    "F64": (np.float64, False),
}
_MAX_HEADER = 100 * 1024 * 1024  # a corrupt length must not make us allocate gigabytes


class ConvertError(BuildError):
    """A checkpoint folder that cannot be converted; ``str()`` is one line."""


@dataclass(frozen=True)
class Tensor:
    """One tensor of a checkpoint, not yet read."""

    name: str
    dtype: str  # safetensors' name: F32, F16, BF16
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute byte offset in ``file``
    nbytes: int

    @property
    def is_bf16(self) -> bool:
        return self.dtype == "BF16"

    def raw(self) -> Array:
        """The stored bits, memory-mapped (bf16 as uint16)."""
        stored, _ = _DTYPES[self.dtype]
        count = int(np.prod(self.shape)) if self.shape else 1
        data = np.memmap(self.file, dtype=stored, mode="r", offset=self.start, shape=(count,))
        return data.reshape(self.shape)

    def float32(self) -> Array:
        """The values as float32 (a copy: the one tensor in hand)."""
        bits = self.raw()
        if self.is_bf16:
            return (bits.astype(np.uint32) << 16).view(np.float32)
        return np.asarray(bits, dtype=np.float32)


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConvertError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ConvertError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ConvertError(f"{path}: expected a JSON object")
    return value


def is_checkpoint(folder: Path) -> bool:
    """A Hugging Face model folder: config.json or safetensors weights, and no adapter_config."""
    if not folder.is_dir() or is_lora(folder):
        return False
    return (folder / "config.json").is_file() or any(folder.glob("*.safetensors"))


def is_lora(folder: Path) -> bool:
    return folder.is_dir() and (folder / "adapter_config.json").is_file()


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files, in a fixed order (the index's when there is one)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index).get("weight_map", {})
        names = sorted(set(weight_map.values()))
        files = [folder / n for n in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ConvertError(f"{folder}: {index.name} names missing shards: {', '.join(missing)}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth")):
            raise ConvertError(
                f"{folder}: only PyTorch pickle weights (.bin/.pt) here; ocillm converts "
                "safetensors only (save with safe_serialization=True)"
            )
        raise ConvertError(f"{folder}: no .safetensors weights in this directory")
    return files


def read_header(file: Path) -> list[Tensor]:
    """The tensors one safetensors file holds, in the order of their bytes."""
    try:
        with open(file, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ConvertError(f"{file}: not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", head)
            if length > _MAX_HEADER:
                raise ConvertError(f"{file}: not a safetensors file (header of {length} bytes)")
            header = json.loads(f.read(length))
    except (ValueError, UnicodeDecodeError):
        raise ConvertError(f"{file}: not a safetensors file (bad header)") from None
    data_start = 8 + length
    size = file.stat().st_size
    tensors = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype")
        if dtype not in _DTYPES:
            raise ConvertError(
                f"{file.name}: tensor {name} is {dtype}; ocillm converts F32, F16 and BF16 "
                "checkpoints (not pre-quantized ones)"
            )
        begin, end = entry["data_offsets"]
        if data_start + end > size:
            raise ConvertError(f"{file}: truncated (tensor {name} runs past the end)")
        shape = tuple(int(d) for d in entry["shape"])
        tensors.append(Tensor(name, dtype, shape, file, data_start + begin, end - begin))
    return sorted(tensors, key=lambda t: t.start)


def read_tensors(folder: Path) -> Iterator[Tensor]:
    seen: set[str] = set()
    for file in safetensors_files(folder):
        for t in read_header(file):
            if t.name in seen:
                raise ConvertError(f"{folder}: tensor {t.name} appears in two files")
            seen.add(t.name)
            yield t

"""GGUF metadata: architecture, parameter size, quantization, context, per-layer bytes.

Only the header is read (memory-mapped); tensor data never is, whatever the file's size.
"""

from __future__ import annotations

from ocillm.gguf.header import GGUFFormatError, GGUFHeader, LazyArray, RawTensor, open_header
from ocillm.gguf.info import (
    EMBEDDING_ARCHITECTURES,
    MAX_SHOWN_ARRAY,
    GGUFInfo,
    TensorInfo,
    file_type_name,
    human_number,
    is_gguf,
    read_gguf_info,
)

__all__ = [
    "EMBEDDING_ARCHITECTURES",
    "MAX_SHOWN_ARRAY",
    "GGUFFormatError",
    "GGUFHeader",
    "GGUFInfo",
    "LazyArray",
    "RawTensor",
    "TensorInfo",
    "file_type_name",
    "human_number",
    "is_gguf",
    "open_header",
    "read_gguf_info",
]

"""What ocillm needs to know about a GGUF: family, size, quantization, context, per-layer bytes."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from gguf import LlamaFileType
from pydantic import BaseModel, Field

from ocillm.errors import BuildError
from ocillm.gguf.header import GGUFFormatError, GGUFHeader, LazyArray, has_gguf_magic, open_header

#: Arrays longer than this are shown empty in non-verbose metadata, as ``ollama show`` does.
MAX_SHOWN_ARRAY = 5

#: ``general.file_type`` -> the name Ollama prints (its fs/ggml FileType.String()); other ids
#: fall back to llama.cpp's name (``LlamaFileType`` without ``MOSTLY_``).
_FILE_TYPE_NAMES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "MXFP4",  # Ollama's own gpt-oss files; llama.cpp's id for MXFP4 is 38
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    21: "Q2_K_S",
    32: "BF16",
    38: "MXFP4",
}

#: Architectures that are embedding (encoder) models whatever their pooling says.
EMBEDDING_ARCHITECTURES = frozenset(
    {
        "bert",
        "nomic-bert",
        "nomic-bert-moe",
        "jina-bert-v2",
        "jina-bert-v3",
        "modern-bert",
        "neo-bert",
        "t5encoder",
        "gemma-embedding",
    }
)

_BLOCK_RE = re.compile(r"^blk\.(\d+)\.")


class TensorInfo(BaseModel):
    name: str
    type: str  # ggml tensor type: "F32", "Q4_K", ...
    shape: list[int]  # GGUF order, contiguous dimension first (as ``ollama show -v`` prints)
    n_bytes: int


class GGUFInfo(BaseModel):
    architecture: str
    name: str | None = None
    file_type: str  # Ollama's names: "Q4_K_M", "F16", "BF16", "Q8_0", ...
    parameter_count: int
    parameter_size: str  # Ollama's human form: "268.10M", "8.0B"
    context_length: int | None = None
    embedding_length: int | None = None
    block_count: int | None = None
    head_count: int | None = None
    head_count_kv: int | None = None
    key_length: int | None = None
    value_length: int | None = None
    vocab_size: int | None = None
    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    pooling_type: int | None = None
    is_embedding_model: bool = False
    tensor_bytes: int
    #: Bytes of the tensors of each block (``blk.N.*``), for GPU memory estimation.
    layer_bytes: dict[int, int] = Field(default_factory=dict)
    #: Every key/value, as Ollama's ``model_info``: without ``general.name`` and
    #: ``tokenizer.chat_template``, with ``general.parameter_count``; arrays longer than 5 are
    #: empty unless read with ``verbose=True``.
    metadata: dict[str, Any] = Field(default_factory=dict)
    tensors: list[TensorInfo] = Field(default_factory=list)


def human_number(n: int) -> str:
    """Ollama's ``format.HumanNumber``: 268098176 -> "268.10M", 8030261248 -> "8.0B"."""
    for scale, suffix, decimals in ((1_000_000_000, "B", 1), (1_000_000, "M", 2)):
        if n >= scale:
            value = n / scale
            if value == int(value):
                return f"{int(value)}{suffix}"
            return f"{value:.{decimals}f}{suffix}"
    if n >= 1000:
        return f"{n / 1000:.0f}K"
    return str(n)


def file_type_name(file_type: int) -> str:
    """The name of a ``general.file_type`` value (Ollama's spelling where it has one)."""
    if file_type in _FILE_TYPE_NAMES:
        return _FILE_TYPE_NAMES[file_type]
    try:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return "unknown"


def is_gguf(path: Path) -> bool:
    """Whether ``path`` starts with the GGUF magic. Reads 4 bytes; False for unreadable paths."""
    return has_gguf_magic(Path(path))


def _int_or_max(value: Any) -> int | None:
    """An integer KV, or the largest element of a per-layer array (e.g. head counts)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list):
        ints = [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
        return max(ints) if ints else None
    return None


def _token(header: GGUFHeader, tokens: Any, key: str) -> str | None:
    token_id = header.kv.get(key)
    if not isinstance(tokens, LazyArray) or not isinstance(token_id, int):
        return None
    try:
        value = header.array_item(tokens, token_id)
    except IndexError:
        return None
    return value if isinstance(value, str) else None


def _tensor_sizes(header: GGUFHeader) -> list[int]:
    """Byte size of every tensor: from its type, else from the gap to the next tensor."""
    sizes: list[int | None] = [t.n_bytes_from_type() for t in header.tensors]
    if any(s is None for s in sizes):
        data_size = header.file_size - header.data_offset
        by_offset = sorted(range(len(header.tensors)), key=lambda i: header.tensors[i].offset)
        for pos, i in enumerate(by_offset):
            if sizes[i] is None:
                nxt = by_offset[pos + 1] if pos + 1 < len(by_offset) else None
                end = header.tensors[nxt].offset if nxt is not None else data_size
                sizes[i] = max(0, end - header.tensors[i].offset)
    return [s or 0 for s in sizes]


def _infer_file_type(tensors: list[TensorInfo]) -> str:
    """For files without ``general.file_type``: the type holding most bytes of 2-D weights."""
    weights: Counter[str] = Counter()
    for t in tensors:
        if len(t.shape) >= 2:
            weights[t.type] += t.n_bytes
    if not weights:
        return "unknown"
    return weights.most_common(1)[0][0]


def _metadata(header: GGUFHeader, parameter_count: int, verbose: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in header.kv.items():
        if key in ("general.name", "tokenizer.chat_template"):
            continue
        if isinstance(value, LazyArray):
            out[key] = (
                header.array_values(value) if verbose or len(value) <= MAX_SHOWN_ARRAY else []
            )
        else:
            out[key] = value
    out.setdefault("general.parameter_count", parameter_count)
    return out


def _info_from_header(header: GGUFHeader, verbose: bool) -> GGUFInfo:
    kv = header.kv
    arch = kv.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GGUFFormatError("no general.architecture key")

    def arch_value(suffix: str) -> Any:
        return header.value(f"{arch}.{suffix}")

    sizes = _tensor_sizes(header)
    end = max((t.offset + s for t, s in zip(header.tensors, sizes, strict=True)), default=0)
    if header.data_offset + end > header.file_size:
        raise GGUFFormatError(
            f"truncated: tensor data ends at byte {header.data_offset + end}, "
            f"file has {header.file_size}"
        )
    tensors = [
        TensorInfo(name=t.name, type=t.type_name, shape=list(t.shape), n_bytes=s)
        for t, s in zip(header.tensors, sizes, strict=True)
    ]
    layer_bytes: dict[int, int] = {}
    for t in tensors:
        m = _BLOCK_RE.match(t.name)
        if m:
            block = int(m.group(1))
            layer_bytes[block] = layer_bytes.get(block, 0) + t.n_bytes
    parameter_count = sum(t.n_elements for t in header.tensors)

    raw_ftype = kv.get("general.file_type")
    if isinstance(raw_ftype, int) and not isinstance(raw_ftype, bool) and raw_ftype != 1024:
        file_type = file_type_name(raw_ftype)
    else:
        file_type = _infer_file_type(tensors)

    tokens = kv.get("tokenizer.ggml.tokens")
    vocab_size = _int_or_max(arch_value("vocab_size"))
    if vocab_size is None and isinstance(tokens, LazyArray):
        vocab_size = len(tokens)
    pooling = arch_value("pooling_type")
    pooling_type = pooling if isinstance(pooling, int) and not isinstance(pooling, bool) else None
    causal = arch_value("attention.causal")
    is_embedding = (
        arch in EMBEDDING_ARCHITECTURES
        or (pooling_type is not None and pooling_type > 0)
        or causal is False
    )
    name = kv.get("general.name")
    template = kv.get("tokenizer.chat_template")

    return GGUFInfo(
        architecture=arch,
        name=name if isinstance(name, str) else None,
        file_type=file_type,
        parameter_count=parameter_count,
        parameter_size=human_number(parameter_count),
        context_length=_int_or_max(arch_value("context_length")),
        embedding_length=_int_or_max(arch_value("embedding_length")),
        block_count=_int_or_max(arch_value("block_count")),
        head_count=_int_or_max(arch_value("attention.head_count")),
        head_count_kv=_int_or_max(arch_value("attention.head_count_kv")),
        key_length=_int_or_max(arch_value("attention.key_length")),
        value_length=_int_or_max(arch_value("attention.value_length")),
        vocab_size=vocab_size,
        chat_template=template if isinstance(template, str) else None,
        bos_token=_token(header, tokens, "tokenizer.ggml.bos_token_id"),
        eos_token=_token(header, tokens, "tokenizer.ggml.eos_token_id"),
        pooling_type=pooling_type,
        is_embedding_model=is_embedding,
        tensor_bytes=sum(sizes),
        layer_bytes=layer_bytes,
        metadata=_metadata(header, parameter_count, verbose),
        tensors=tensors,
    )


def read_gguf_info(path: Path, *, verbose: bool = False) -> GGUFInfo:
    """Read a GGUF's header (memory-mapped; tensor data is never read).

    ``verbose`` keeps long arrays (the vocabulary) in ``metadata``, like ``ollama show -v``.
    Raises :class:`~ocillm.errors.BuildError` naming the file for anything that is not a
    readable, complete GGUF.
    """
    path = Path(path)
    try:
        with open_header(path) as header:
            return _info_from_header(header, verbose)
    except GGUFFormatError as err:
        raise BuildError(f"{path}: not a GGUF file: {err}") from None
    except IsADirectoryError:
        raise BuildError(f"{path}: not a GGUF file: it is a directory") from None
    except FileNotFoundError:
        raise BuildError(f"{path}: no such file") from None
    except OSError as err:
        raise BuildError(f"{path}: cannot read: {err.strerror or err}") from None

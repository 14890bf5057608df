"""A checkpoint folder -> one GGUF file, written in two passes so memory holds one tensor.

Pass one reads only headers and writes the GGUF header, metadata and tensor table; pass two reads,
transforms and writes each tensor in turn. The output depends only on the folder's contents:
tensors in a fixed order (by layer, then name), no paths, no times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from ocillm.convert.architectures import (
    Architecture,
    Hparams,
    architecture,
    hf_text_name,
    llama3_rope_factors,
    text_config,
)
from ocillm.convert.checkpoint import Array, ConvertError, Tensor, read_json, read_tensors
from ocillm.convert.tokenizer import Vocabulary, read_vocabulary, special_vocab, write_vocabulary

Progress = Callable[[int, int], None]  # (tensors written, tensors in all)


@dataclass
class Converted:
    """What a conversion wrote, and what the image should carry with it."""

    architecture: str
    tensors: int
    stop: list[str] = field(default_factory=list)  # generation_config.json's end tokens


@dataclass(frozen=True)
class _Planned:
    gguf_name: str
    shape: tuple[int, ...]
    out_type: gguf.GGMLQuantizationType
    load: Callable[[], Array]


def convert_checkpoint(folder: Path, out: Path, progress: Progress | None = None) -> Converted:
    """Write ``folder`` (config.json, safetensors, tokenizer) as a GGUF file at ``out``."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ConvertError(
            f"{folder}: no config.json (a Hugging Face checkpoint folder needs config.json "
            "beside its .safetensors files)"
        )
    config = text_config(read_json(config_path))
    arch = architecture(config)
    hp = Hparams.read(config)
    vocab = read_vocabulary(folder, _int(config.get("vocab_size")))
    plan = _plan(folder, arch, hp, config)
    special = special_vocab(folder, vocab)
    writer = gguf.GGUFWriter(out, arch.name)
    try:
        _write_metadata(writer, arch, hp, config, folder, plan, vocab, special)
        for p in plan:
            # Raw bytes with their GGML type: the shape given is in bytes along the last axis.
            item = _itemsize(p.out_type)
            byte_shape = (*p.shape[:-1], p.shape[-1] * item) if p.shape else (item,)
            writer.add_tensor_info(
                p.gguf_name, byte_shape, np.dtype(np.uint8), _nbytes(p), raw_dtype=p.out_type
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, p in enumerate(plan, 1):
            writer.write_tensor_data(_encode(p.load(), p.out_type))
            if progress is not None:
                progress(i, len(plan))
    finally:
        writer.close()
    return Converted(arch.name, len(plan), _stop_tokens(folder, config, vocab))


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None


def _plan(
    folder: Path, arch: Architecture, hp: Hparams, config: Mapping[str, Any]
) -> list[_Planned]:
    names = gguf.get_tensor_name_map(arch.arch, hp.n_layers)
    planned: dict[str, _Planned] = {}
    for t in read_tensors(folder):
        hf_name = hf_text_name(t.name)
        if hf_name is None:
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ConvertError(
                f"{folder}: tensor {t.name} has no llama.cpp name for {arch.name} "
                "(a checkpoint of another architecture, or extra weights)"
            )
        if gguf_name in planned:
            raise ConvertError(f"{folder}: tensors map to {gguf_name} twice")
        planned[gguf_name] = _Planned(
            gguf_name, t.shape, _out_type(t), _loader(t, gguf_name, arch, hp)
        )
    if "token_embd.weight" not in planned:
        raise ConvertError(f"{folder}: no token embedding (model.embed_tokens.weight)")
    rope = _rope_scaling(config)
    if rope.get("rope_type") == "llama3":
        factors = llama3_rope_factors(rope, hp)
        planned["rope_freqs.weight"] = _Planned(
            "rope_freqs.weight", factors.shape, gguf.GGMLQuantizationType.F32, lambda: factors
        )
    return sorted(planned.values(), key=lambda p: tensor_order(p.gguf_name))


def tensor_order(name: str) -> tuple[int, int, str]:
    """Embedding first, then blocks by number, then the rest: a layout independent of shards."""
    m = re.match(r"blk\.(\d+)\.", name)
    if m:
        return (1, int(m.group(1)), name)
    return (0 if name.startswith("token_embd") else 2, 0, name)


def _out_type(t: Tensor) -> gguf.GGMLQuantizationType:
    # Vectors (norms, biases) stay F32 as llama.cpp's converter keeps them; matrices keep the
    # checkpoint's half type (BF16 stays BF16, exact), F32 ones become F16.
    if len(t.shape) < 2:
        return gguf.GGMLQuantizationType.F32
    return gguf.GGMLQuantizationType.BF16 if t.is_bf16 else gguf.GGMLQuantizationType.F16


def _loader(t: Tensor, gguf_name: str, arch: Architecture, hp: Hparams) -> Callable[[], Array]:
    def load() -> Array:
        if t.is_bf16 and _out_type(t) == gguf.GGMLQuantizationType.BF16:
            # bf16 in, bf16 out: the stored bits themselves, rows permuted where the architecture
            # says (the same bytes as the float32 round trip, which is exact for bf16 values,
            # without a float32 copy of the tensor: four times less memory for the largest one).
            return arch.transform(gguf_name, t.raw(), hp)
        return arch.transform(gguf_name, t.float32(), hp)

    return load


def _itemsize(out_type: gguf.GGMLQuantizationType) -> int:
    return 4 if out_type == gguf.GGMLQuantizationType.F32 else 2


def _nbytes(p: _Planned) -> int:
    return (int(np.prod(p.shape)) if p.shape else 1) * _itemsize(p.out_type)


def _encode(values: Array, out_type: gguf.GGMLQuantizationType) -> Array:
    if values.dtype == np.uint16:  # bf16 bits already (see _loader)
        return np.ascontiguousarray(values).view(np.uint8)
    if out_type == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(values, dtype=np.float32).view(np.uint8)
    if out_type == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(values, dtype=np.float16).view(np.uint8)
    return bf16_bits(values).view(np.uint8)


def bf16_bits(values: Array) -> Array:
    """float32 -> bfloat16 bits, rounding to nearest even (exact for values that came from bf16)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))) >> 16
    return rounded.astype(np.uint16)


def _rope_scaling(config: Mapping[str, Any]) -> Mapping[str, Any]:
    rope = config.get("rope_scaling")
    if not isinstance(rope, Mapping):
        return {}
    kind = rope.get("rope_type") or rope.get("type")
    return {**rope, "rope_type": kind}


def _write_metadata(
    w: gguf.GGUFWriter,
    arch: Architecture,
    hp: Hparams,
    config: Mapping[str, Any],
    folder: Path,
    plan: list[_Planned],
    vocab: Vocabulary,
    special: gguf.SpecialVocab,
) -> None:
    w.add_type(gguf.GGUFType.MODEL)
    name = config.get("_name_or_path")
    if isinstance(name, str) and name.strip("/"):
        w.add_name(name.rstrip("/").rsplit("/", 1)[-1])  # "org/model" or a training path
    w.add_context_length(hp.context)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layers)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    w.add_rope_dimension_count(hp.head_dim)
    w.add_rope_freq_base(hp.rope_theta)
    w.add_layer_norm_rms_eps(hp.rms_eps)
    w.add_vocab_size(len(vocab.tokens))
    _write_rope_scaling(w, config)
    arch.hparams(w, config, hp)
    w.add_file_type(_file_type(plan))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    write_vocabulary(w, folder, vocab, special)


def _write_rope_scaling(w: gguf.GGUFWriter, config: Mapping[str, Any]) -> None:
    rope = _rope_scaling(config)
    kind = rope.get("rope_type")
    if kind in (None, "default", "llama3"):  # llama3's scaling is the rope_freqs tensor
        return
    factor = float(rope.get("factor", 1.0))
    if kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(factor)
    elif kind == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(factor)
        original = rope.get("original_max_position_embeddings")
        if original is not None:
            w.add_rope_scaling_orig_ctx_len(int(original))
    else:
        raise ConvertError(f"config.json: rope scaling {kind!r} is not supported for conversion")


def _file_type(plan: list[_Planned]) -> int:
    types = {p.out_type for p in plan if len(p.shape) >= 2}
    if gguf.GGMLQuantizationType.BF16 in types:
        return int(gguf.LlamaFileType.MOSTLY_BF16)
    return int(gguf.LlamaFileType.MOSTLY_F16)


def _stop_tokens(folder: Path, config: Mapping[str, Any], vocab: Vocabulary) -> list[str]:
    """generation_config.json's eos_token_id (one id or several) as token texts."""
    path = folder / "generation_config.json"
    source = read_json(path) if path.is_file() else {}
    ids = source.get("eos_token_id", None)
    if ids is None:
        return []
    stops: list[str] = []
    for token_id in ids if isinstance(ids, list) else [ids]:
        if isinstance(token_id, int) and 0 <= token_id < len(vocab.tokens):
            text = vocab.token_text(token_id)
            if text and text not in stops:
                stops.append(text)
    return stops


def iter_plan_names(folder: Path) -> Iterator[str]:
    """The GGUF tensor names a folder converts to (for tests and diagnostics)."""
    config = text_config(read_json(folder / "config.json"))
    arch = architecture(config)
    hp = Hparams.read(config)
    for p in _plan(folder, arch, hp, config):
        yield p.gguf_name

"""What differs per architecture: the GGUF name, the hyperparameters llama.cpp reads, and the
transforms its converter applies to tensors.

Names come from gguf-py's tensor map (``gguf.get_tensor_name_map``), the table llama.cpp's
converter uses. The transforms, as llama.cpp documents them:

- llama (and Mistral): Q and K rows are permuted from Hugging Face's rotary layout (the two
  halves of each head) back to Meta's interleaved pairs, which llama.cpp's "normal" rope expects.
- Qwen2/Qwen3 use NEOX rope, Hugging Face's own layout: no permutation.
- Gemma 2/3 store RMSNorm weights zero-centred and scale by ``1 + w``; llama.cpp multiplies by
  ``w``, so every ``*norm.weight`` gets +1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gguf
import numpy as np

from ocillm.convert.checkpoint import Array, ConvertError

Config = Mapping[str, Any]


@dataclass(frozen=True)
class Hparams:
    """The numbers every supported architecture shares."""

    n_layers: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    context: int
    rms_eps: float
    rope_theta: float

    @classmethod
    def read(cls, config: Config) -> Hparams:
        try:
            n_embd = int(config["hidden_size"])
            n_head = int(config["num_attention_heads"])
            return cls(
                n_layers=int(config["num_hidden_layers"]),
                n_embd=n_embd,
                n_ff=int(config["intermediate_size"]),
                n_head=n_head,
                n_head_kv=int(config.get("num_key_value_heads") or n_head),
                head_dim=int(config.get("head_dim") or n_embd // n_head),
                context=int(config.get("max_position_embeddings") or 4096),
                rms_eps=float(config.get("rms_norm_eps") or 1e-6),
                rope_theta=float(config.get("rope_theta") or 10000.0),
            )
        except KeyError as e:
            raise ConvertError(f"config.json has no {e.args[0]}") from None


def permute_rotary(w: Array, n_head: int) -> Array:
    """Hugging Face's half-split rotary rows -> interleaved pairs, per head (rows = dim 0)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


Transform = Callable[[str, Array], Array]  # (GGUF name, float32 values) -> values


@dataclass(frozen=True)
class Architecture:
    name: str  # the GGUF architecture (general.architecture)
    arch: gguf.MODEL_ARCH
    norm_plus_one: bool = False
    permute_qk: bool = False
    hparams: Callable[[gguf.GGUFWriter, Config, Hparams], None] = field(
        default=lambda w, c, h: None
    )

    def transform(self, gguf_name: str, values: Array, hp: Hparams) -> Array:
        if self.norm_plus_one and gguf_name.endswith("norm.weight"):
            return values + np.float32(1.0)
        if self.permute_qk:
            if gguf_name.endswith("attn_q.weight") or gguf_name.endswith("attn_q.bias"):
                return permute_rotary(values, hp.n_head)
            if gguf_name.endswith("attn_k.weight") or gguf_name.endswith("attn_k.bias"):
                return permute_rotary(values, hp.n_head_kv)
        return values

    def permute_heads(self, gguf_name: str, hp: Hparams) -> int | None:
        """Heads to permute the rows of this tensor by (a LoRA's B matrix), None for none."""
        if not self.permute_qk:
            return None
        if ".attn_q." in gguf_name:
            return hp.n_head
        if ".attn_k." in gguf_name:
            return hp.n_head_kv
        return None


def _gemma2(w: gguf.GGUFWriter, c: Config, hp: Hparams) -> None:
    if c.get("attn_logit_softcapping") is not None:
        w.add_attn_logit_softcapping(float(c["attn_logit_softcapping"]))
    if c.get("final_logit_softcapping") is not None:
        w.add_final_logit_softcapping(float(c["final_logit_softcapping"]))
    if c.get("sliding_window") is not None:
        w.add_sliding_window(int(c["sliding_window"]))


def _gemma3(w: gguf.GGUFWriter, c: Config, hp: Hparams) -> None:
    if c.get("final_logit_softcapping") is not None:
        w.add_final_logit_softcapping(float(c["final_logit_softcapping"]))
    if c.get("sliding_window") is not None:
        w.add_sliding_window(int(c["sliding_window"]))
    if c.get("rope_local_base_freq") is not None:
        w.add_rope_freq_base_swa(float(c["rope_local_base_freq"]))
    types = c.get("layer_types")
    if isinstance(types, list) and len(types) == hp.n_layers:
        w.add_sliding_window_pattern([t == "sliding_attention" for t in types])
    elif c.get("sliding_window_pattern") is not None:
        # Every n-th layer is global, the others slide (Gemma 3's published pattern is 6).
        n = int(c["sliding_window_pattern"])
        w.add_sliding_window_pattern([(i + 1) % n != 0 for i in range(hp.n_layers)])


_LLAMA = Architecture("llama", gguf.MODEL_ARCH.LLAMA, permute_qk=True)
_QWEN2 = Architecture("qwen2", gguf.MODEL_ARCH.QWEN2)
_QWEN3 = Architecture("qwen3", gguf.MODEL_ARCH.QWEN3)
_GEMMA2 = Architecture("gemma2", gguf.MODEL_ARCH.GEMMA2, norm_plus_one=True, hparams=_gemma2)
_GEMMA3 = Architecture("gemma3", gguf.MODEL_ARCH.GEMMA3, norm_plus_one=True, hparams=_gemma3)

# Hugging Face's "architectures" entry in config.json -> ours.
ARCHITECTURES: dict[str, Architecture] = {
    "LlamaForCausalLM": _LLAMA,
    "MistralForCausalLM": _LLAMA,
    "Qwen2ForCausalLM": _QWEN2,
    "Qwen3ForCausalLM": _QWEN3,
    "Gemma2ForCausalLM": _GEMMA2,
    "Gemma3ForCausalLM": _GEMMA3,
    "Gemma3ForConditionalGeneration": _GEMMA3,  # its text model only
}

# Tensors of a multimodal Gemma 3 that are not the text model, and prefixes that wrap it.
_SKIP_PREFIXES = (
    "vision_tower.",
    "multi_modal_projector.",
    "model.vision_tower.",
    "model.multi_modal_projector.",
)
_TEXT_PREFIXES = {"model.language_model.": "model.", "language_model.": ""}
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def text_config(config: Config) -> Config:
    """A multimodal checkpoint keeps its text model's config under ``text_config``."""
    inner = config.get("text_config")
    if isinstance(inner, Mapping):
        return {**config, **inner}
    return config


def architecture(config: Config) -> Architecture:
    names = config.get("architectures") or []
    if not isinstance(names, list) or not names:
        raise ConvertError(
            'config.json names no architecture (its "architectures" list is missing); '
            f"supported: {supported()}"
        )
    name = str(names[0])
    if name not in ARCHITECTURES:
        raise ConvertError(
            f"architecture {name} is not supported for conversion; supported: {supported()}"
        )
    return ARCHITECTURES[name]


def supported() -> str:
    return ", ".join(ARCHITECTURES)


def hf_text_name(name: str) -> str | None:
    """The text model's own name for a checkpoint tensor, or None for one to skip."""
    if name.startswith(_SKIP_PREFIXES) or name.endswith(_IGNORED_SUFFIXES):
        return None
    for prefix, replacement in _TEXT_PREFIXES.items():
        if name.startswith(prefix):
            return replacement + name[len(prefix) :]
    return name


def llama3_rope_factors(rope: Config, hp: Hparams) -> Array:
    """Llama 3.1's frequency-dependent rope scaling as llama.cpp's ``rope_freqs`` tensor: the
    divisor for each rotary frequency (1 for high frequencies, ``factor`` for low ones, a smooth
    blend between)."""
    factor = float(rope.get("factor", 8.0))
    low = float(rope.get("low_freq_factor", 1.0))
    high = float(rope.get("high_freq_factor", 4.0))
    old = float(rope.get("original_max_position_embeddings", 8192))
    low_wavelen, high_wavelen = old / low, old / high
    freqs = 1.0 / (hp.rope_theta ** (np.arange(0, hp.head_dim, 2, dtype=np.float64) / hp.head_dim))
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)

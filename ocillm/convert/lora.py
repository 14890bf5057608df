"""A PEFT LoRA folder (adapter_config.json + adapter_model.safetensors) -> a GGUF LoRA.

llama.cpp's adapter format: ``general.type = adapter``, ``adapter.type = lora``,
``adapter.lora.alpha``, and for each adapted weight ``<gguf name>.lora_a`` (rank x in) and
``<gguf name>.lora_b`` (out x rank), so that the weight gains ``alpha / rank * B @ A``. The base
is the model the build's FROM gave: its GGUF says the architecture and the head counts the
llama Q/K permutation needs (permuting W's rows permutes B's rows; A is untouched).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from ocillm.convert.architectures import ARCHITECTURES, Hparams, hf_text_name, permute_rotary
from ocillm.convert.checkpoint import ConvertError, Tensor, read_json, read_tensors
from ocillm.convert.model import tensor_order

_PEFT_NAME = re.compile(
    r"^(?:base_model\.model\.)?(?P<base>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$"
)


@dataclass(frozen=True)
class BaseModel:
    """What an adapter needs to know of the model it adapts (read from the base GGUF)."""

    architecture: str
    n_layers: int
    n_head: int
    n_head_kv: int

    @classmethod
    def from_metadata(cls, metadata: dict[str, object]) -> BaseModel:
        arch = str(metadata.get("general.architecture", ""))

        def number(key: str, default: int = 0) -> int:
            value = metadata.get(f"{arch}.{key}", default)
            return int(value) if isinstance(value, (int, float)) else default

        n_head = number("attention.head_count")
        return cls(arch, number("block_count"), n_head, number("attention.head_count_kv", n_head))


def convert_lora(folder: Path, base: BaseModel, out: Path) -> int:
    """Write the adapter in ``folder`` for ``base`` as a GGUF LoRA at ``out``; returns the
    number of adapted weights."""
    config = read_json(folder / "adapter_config.json")
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise ConvertError(f"{folder}: a {peft_type} adapter; only LoRA adapters convert")
    if config.get("use_dora"):
        raise ConvertError(f"{folder}: a DoRA adapter; llama.cpp applies plain LoRA only")
    if config.get("modules_to_save"):
        raise ConvertError(
            f"{folder}: the adapter also saves whole modules ({config['modules_to_save']}); "
            "a GGUF LoRA carries only low-rank deltas (merge it into the base instead)"
        )
    arch = next((a for a in ARCHITECTURES.values() if a.name == base.architecture), None)
    if arch is None:
        raise ConvertError(
            f"{folder}: the base model is {base.architecture or 'unknown'}; LoRA adapters "
            f"convert for {', '.join(sorted({a.name for a in ARCHITECTURES.values()}))}"
        )
    rank = int(config.get("r", 8))
    alpha = float(config.get("lora_alpha", rank))
    if config.get("use_rslora"):
        alpha *= math.sqrt(rank)  # rsLoRA scales by alpha/sqrt(r); llama.cpp by alpha/r
    pairs = _pairs(folder)
    names = gguf.get_tensor_name_map(arch.arch, base.n_layers)
    hp = Hparams(base.n_layers, 0, 0, base.n_head, base.n_head_kv, 0, 0, 0.0, 0.0)
    plan: list[tuple[str, Tensor, int | None]] = []
    for hf_base, (a, b) in pairs.items():
        text_name = hf_text_name(hf_base + ".weight")
        gguf_name = names.get_name(text_name, try_suffixes=(".weight",)) if text_name else None
        if gguf_name is None:
            raise ConvertError(f"{folder}: adapted weight {hf_base} has no llama.cpp name")
        if a.shape[0] != b.shape[1]:
            raise ConvertError(f"{folder}: {hf_base}: lora_A and lora_B ranks differ")
        heads = arch.permute_heads(gguf_name, hp)
        plan.append((gguf_name + ".lora_a", a, None))
        plan.append((gguf_name + ".lora_b", b, heads))
    plan.sort(key=lambda entry: tensor_order(entry[0]))
    writer = gguf.GGUFWriter(out, arch.name)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        for name, t, _ in plan:
            writer.add_tensor_info(name, t.shape, np.dtype(np.float32), 4 * int(np.prod(t.shape)))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for _, t, heads in plan:
            values = t.float32()
            if heads is not None:
                values = permute_rotary(values, heads)
            writer.write_tensor_data(np.ascontiguousarray(values, dtype=np.float32))
    finally:
        writer.close()
    return len(pairs)


def _pairs(folder: Path) -> dict[str, tuple[Tensor, Tensor]]:
    found: dict[str, dict[str, Tensor]] = {}
    for t in read_tensors(folder):
        m = _PEFT_NAME.match(t.name)
        if m is None:
            raise ConvertError(
                f"{folder}: tensor {t.name} is not a LoRA A/B matrix (embedding LoRA, DoRA "
                "magnitudes and saved modules do not convert)"
            )
        found.setdefault(m.group("base"), {})[m.group("ab")] = t
    pairs = {}
    for base, ab in sorted(found.items()):
        if set(ab) != {"A", "B"}:
            raise ConvertError(f"{folder}: {base} has lora_{''.join(ab)} without its pair")
        pairs[base] = (ab["A"], ab["B"])
    if not pairs:
        raise ConvertError(f"{folder}: the adapter holds no LoRA weights")
    return pairs

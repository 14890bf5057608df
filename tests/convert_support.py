"""Tiny Hugging Face checkpoints written at test time, and numpy reference forward passes.

The checkpoints are real ones in miniature: safetensors written by the ``safetensors`` library,
a byte-level BPE ``tokenizer.json`` trained with ``tokenizers`` (Llama 3's pre-tokenizer), a
SentencePiece ``tokenizer.model`` trained with ``sentencepiece`` (Gemma's layout), a PEFT LoRA.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
    "\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
WORDS = [
    *[
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "while",
        "models",
        "learn",
        "to",
        "write",
    ],
    *[
        "tiny",
        "stories",
        "about",
        "cats",
        "birds",
        "rivers",
        "mountains",
        "and",
        "numbers",
        "like",
        "12",
        "345",
        "6789",
    ],
]


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 12)))) + "." for _ in range(n)]


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1))


def save_safetensors(path: Path, tensors: dict[str, np.ndarray], bf16: bool = False) -> None:
    """Write with the real library; bf16 through its torch-free route (raw bits as uint16 are
    not a bf16 tensor there, so bf16 files are written by hand in the documented layout)."""
    if not bf16:
        from safetensors.numpy import save_file

        save_file(tensors, str(path), metadata={"format": "pt"})
        return
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        bits = to_bf16_bits(tensors[name])
        data = bits.tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(bits.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for b in blobs:
            f.write(b)


def to_bf16_bits(values: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------------------------- llama


def llama_config(vocab: int) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": vocab,
        "tie_word_embeddings": False,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "torch_dtype": "float32",
    }


def write_bpe_tokenizer(folder: Path) -> int:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    special = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)]
    )
    tok.save(str(folder / "tokenizer.json"))
    write_json(
        folder / "tokenizer_config.json",
        {
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>",
            "add_bos_token": True,
            "chat_template": CHAT_TEMPLATE,
        },
    )
    write_json(folder / "generation_config.json", {"bos_token_id": 0, "eos_token_id": [1, 4]})
    return int(tok.get_vocab_size())


def llama_weights(cfg: dict[str, Any], seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = d // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd

    def m(*shape: int, scale: float = 0.15) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {"model.embed_tokens.weight": m(v, d, scale=1.0), "lm_head.weight": m(v, d, scale=0.3)}
    w["model.norm.weight"] = (1 + m(d, scale=0.1)).astype(np.float32)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = (1 + m(d, scale=0.1)).astype(np.float32)
        w[p + "post_attention_layernorm.weight"] = (1 + m(d, scale=0.1)).astype(np.float32)
        w[p + "self_attn.q_proj.weight"] = m(d, d)
        w[p + "self_attn.k_proj.weight"] = m(kv, d)
        w[p + "self_attn.v_proj.weight"] = m(kv, d)
        w[p + "self_attn.o_proj.weight"] = m(d, d)
        w[p + "mlp.gate_proj.weight"] = m(f, d)
        w[p + "mlp.up_proj.weight"] = m(f, d)
        w[p + "mlp.down_proj.weight"] = m(d, f)
    return w


def write_llama(folder: Path, seed: int = 1) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_bpe_tokenizer(folder)
    cfg = llama_config(vocab)
    write_json(folder / "config.json", cfg)
    weights = llama_weights(cfg, seed)
    # Two shards and an index, as large checkpoints come.
    names = sorted(weights)
    half = len(names) // 2
    shards = {
        "model-00001-of-00002.safetensors": names[:half],
        "model-00002-of-00002.safetensors": names[half:],
    }
    for file, part in shards.items():
        save_safetensors(folder / file, {n: weights[n] for n in part})
    write_json(
        folder / "model.safetensors.index.json",
        {"metadata": {}, "weight_map": {n: file for file, part in shards.items() for n in part}},
    )
    return weights


def write_lora(
    folder: Path, base_cfg: dict[str, Any], rank: int = 4, alpha: float = 8.0, seed: int = 5
) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    d = base_cfg["hidden_size"]
    kv = base_cfg["num_key_value_heads"] * (d // base_cfg["num_attention_heads"])
    out_dims = {"q_proj": d, "k_proj": kv, "v_proj": kv, "o_proj": d}
    tensors = {}
    for i in range(base_cfg["num_hidden_layers"]):
        for mod, out in out_dims.items():
            base = f"base_model.model.model.layers.{i}.self_attn.{mod}"
            tensors[base + ".lora_A.weight"] = (rng.standard_normal((rank, d)) * 0.3).astype(
                np.float32
            )
            tensors[base + ".lora_B.weight"] = (rng.standard_normal((out, rank)) * 0.3).astype(
                np.float32
            )
    from safetensors.numpy import save_file

    save_file(tensors, str(folder / "adapter_model.safetensors"))
    write_json(
        folder / "adapter_config.json",
        {
            "peft_type": "LORA",
            "r": rank,
            "lora_alpha": alpha,
            "target_modules": list(out_dims),
            "base_model_name_or_path": "tiny-llama",
            "bias": "none",
        },
    )
    return tensors


def merge_lora(
    weights: dict[str, np.ndarray], lora: dict[str, np.ndarray], scale: float
) -> dict[str, np.ndarray]:
    merged = dict(weights)
    for name, a in lora.items():
        if ".lora_A." not in name:
            continue
        target = name.replace("base_model.model.", "").replace(".lora_A.weight", ".weight")
        b = lora[name.replace("lora_A", "lora_B")]
        merged[target] = (weights[target] + scale * (b @ a)).astype(np.float32)
    return merged


# ---------------------------------------------------------------------------------- gemma


def gemma_config(vocab: int) -> dict[str, Any]:
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "query_pre_attn_scalar": 32,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-6,
        # one base for global and sliding layers, and a window longer than any test prompt, so
        # the reference need not model which layer slides
        "rope_theta": 10000.0,
        "rope_local_base_freq": 10000.0,
        "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"],
        "final_logit_softcapping": None,
        "hidden_activation": "gelu_pytorch_tanh",
        "vocab_size": vocab,
        "pad_token_id": 0,
        "eos_token_id": [1, 106],
        "bos_token_id": 2,
        "torch_dtype": "bfloat16",
    }


def write_sentencepiece(folder: Path) -> int:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()),
        model_writer=buf,
        model_type="bpe",
        vocab_size=360,
        byte_fallback=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        split_digits=True,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (folder / "tokenizer.model").write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    write_json(
        folder / "tokenizer_config.json",
        {
            "bos_token": "<bos>",
            "eos_token": "<eos>",
            "pad_token": "<pad>",
            "add_bos_token": True,
            "add_eos_token": False,
            # as Gemma's: the turn markers are special (control) tokens
            "added_tokens_decoder": {
                str(sp.PieceToId(t)): {"content": t, "special": True}
                for t in ("<start_of_turn>", "<end_of_turn>")
            },
            "chat_template": "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}",
        },
    )
    end_of_turn = sp.PieceToId("<end_of_turn>")
    write_json(folder / "generation_config.json", {"eos_token_id": [1, end_of_turn]})
    return int(sp.GetPieceSize())


def gemma_weights(cfg: dict[str, Any], seed: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d, f, v, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd

    def m(*shape: int, scale: float = 0.15) -> np.ndarray:
        return from_bf16_bits(to_bf16_bits(rng.standard_normal(shape) * scale))

    w = {"model.embed_tokens.weight": m(v, d, scale=0.2), "model.norm.weight": m(d, scale=0.1)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for norm in (
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ):
            w[p + norm + ".weight"] = m(d, scale=0.1)
        w[p + "self_attn.q_norm.weight"] = m(hd, scale=0.1)
        w[p + "self_attn.k_norm.weight"] = m(hd, scale=0.1)
        w[p + "self_attn.q_proj.weight"] = m(q, d)
        w[p + "self_attn.k_proj.weight"] = m(kv, d)
        w[p + "self_attn.v_proj.weight"] = m(kv, d)
        w[p + "self_attn.o_proj.weight"] = m(d, q)
        w[p + "mlp.gate_proj.weight"] = m(f, d)
        w[p + "mlp.up_proj.weight"] = m(f, d)
        w[p + "mlp.down_proj.weight"] = m(d, f)
    return w


def write_gemma(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_sentencepiece(folder)
    cfg = gemma_config(vocab)
    write_json(folder / "config.json", cfg)
    weights = gemma_weights(cfg)
    save_safetensors(folder / "model.safetensors", weights, bf16=True)
    return weights


# ------------------------------------------------------------------------- reference passes


def _rms(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope(x: np.ndarray, theta: float) -> np.ndarray:
    """Hugging Face's rotary embedding (rotate_half) on (seq, heads, head_dim)."""
    n, _, hd = x.shape
    inv = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
    ang = np.arange(n)[:, None] * inv[None, :]
    cos, sin = (
        np.cos(np.concatenate([ang, ang], -1))[:, None],
        np.sin(np.concatenate([ang, ang], -1))[:, None],
    )
    half = hd // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    groups = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, groups, axis=1), np.repeat(v, groups, axis=1)
    s = np.einsum("qhd,khd->hqk", q, k) * scale
    s = s + np.triu(np.full(s.shape[-2:], -np.inf), 1)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", p, v).reshape(q.shape[0], -1)


def llama_logits(w: dict[str, np.ndarray], cfg: dict[str, Any], tokens: list[int]) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in w.items()}
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps = cfg["hidden_size"] // nh, cfg["rms_norm_eps"]
    x = w["model.embed_tokens.weight"][tokens]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], eps)
        q = _rope(
            (h @ w[p + "self_attn.q_proj.weight"].T).reshape(len(tokens), nh, hd), cfg["rope_theta"]
        )
        k = _rope(
            (h @ w[p + "self_attn.k_proj.weight"].T).reshape(len(tokens), nkv, hd),
            cfg["rope_theta"],
        )
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(len(tokens), nkv, hd)
        x = x + _attention(q, k, v, 1 / math.sqrt(hd)) @ w[p + "self_attn.o_proj.weight"].T
        h = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        x = (
            x
            + ((g / (1 + np.exp(-g))) * (h @ w[p + "mlp.up_proj.weight"].T))
            @ w[p + "mlp.down_proj.weight"].T
        )
    x = _rms(x, w["model.norm.weight"], eps)
    return np.asarray(x @ w["lm_head.weight"].T)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gemma3_logits(w: dict[str, np.ndarray], cfg: dict[str, Any], tokens: list[int]) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in w.items()}
    nh, nkv, hd, eps = (
        cfg["num_attention_heads"],
        cfg["num_key_value_heads"],
        cfg["head_dim"],
        cfg["rms_norm_eps"],
    )
    n = len(tokens)
    x = w["model.embed_tokens.weight"][tokens] * math.sqrt(cfg["hidden_size"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."

        def norm(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return _rms(t, 1 + w[p + name + ".weight"], eps)

        h = norm(x, "input_layernorm")
        q = norm((h @ w[p + "self_attn.q_proj.weight"].T).reshape(n, nh, hd), "self_attn.q_norm")
        k = norm((h @ w[p + "self_attn.k_proj.weight"].T).reshape(n, nkv, hd), "self_attn.k_norm")
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(n, nkv, hd)
        q, k = _rope(q, cfg["rope_theta"]), _rope(k, cfg["rope_theta"])
        a = (
            _attention(q, k, v, cfg["query_pre_attn_scalar"] ** -0.5)
            @ w[p + "self_attn.o_proj.weight"].T
        )
        x = x + norm(a, "post_attention_layernorm")
        h = norm(x, "pre_feedforward_layernorm")
        f = (
            _gelu_tanh(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
        ) @ w[p + "mlp.down_proj.weight"].T
        x = x + norm(f, "post_feedforward_layernorm")
    x = _rms(x, 1 + w["model.norm.weight"], eps)
    return np.asarray(x @ w["model.embed_tokens.weight"].T)


def greedy(logits_fn: Any, tokens: list[int], steps: int) -> list[int]:
    out = list(tokens)
    for _ in range(steps):
        out.append(int(np.argmax(logits_fn(out)[-1])))
    return out[len(tokens) :]

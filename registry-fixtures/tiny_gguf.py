"""Write a tiny random-weight GGUF that llama.cpp loads and runs.

The model is a llama-architecture transformer with a handful of layers and a small SentencePiece
("llama") vocabulary: ``<unk>``, ``<s>``, ``</s>``, two ChatML control tokens, the 256 byte
fallback tokens and a few hundred ordinary pieces. The weights are random (seeded), so the text it
generates is noise, but every code path of loading, tokenizing, generating and embedding is real.

The output is deterministic: the same arguments always give the same bytes (same sha256).

Usable as a library (``write_tiny_gguf(path)``) and as a script::

    python registry-fixtures/tiny_gguf.py OUT.gguf [--seed N] [--file-type F32|F16] [--embedding]
"""

from __future__ import annotations

import argparse
import string
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt

#: A small ChatML-style Jinja chat template (the shape many GGUF models ship).
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

FILE_TYPES = {
    "F32": (gguf.LlamaFileType.ALL_F32, np.float32),
    "F16": (gguf.LlamaFileType.MOSTLY_F16, np.float16),
}

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPM_SPACE = "\u2581"  # SentencePiece's word-boundary marker

_WORDS_TEXT = (
    "hello world the a an and of to in is it you that he was for on are as with his they I at be "
    "this have from or one had by word but not what all were we when your can said there use each "
    "which she do how their if will up other about out many then them these so some her would make "
    "like him into time has look two more write go see number no way could people my than first "
    "water been call who oil its now find long down day did get come made may part model image "
    "registry layer blob tag push pull serve chat user assistant system"
)
_WORDS = _WORDS_TEXT.split()


def build_vocab(
    n_vocab: int, control: Sequence[str] = ()
) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of a small SPM vocabulary of exactly ``n_vocab`` entries,
    then the ``control`` tokens (a vision model's picture markers) at ids ``n_vocab`` onwards."""
    tokens: list[str] = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types: list[int] = [
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
    ]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(gguf.TokenType.BYTE)

    pieces: list[str] = [SPM_SPACE]
    pieces += list(string.ascii_lowercase + string.ascii_uppercase + string.digits)
    pieces += list(".,!?;:'\"-()[]{}<>/\\|@#$%^&*_+=~`")
    pieces += [SPM_SPACE + c for c in string.ascii_lowercase]
    pieces += [SPM_SPACE + w for w in _WORDS]
    # Fill the rest with lowercase bigrams ("ab", "ac", ...) so that merges have something to do.
    letters = string.ascii_lowercase
    bigrams = (a + b for a in letters for b in letters)
    seen = set(tokens)
    normal: list[str] = []
    for piece in pieces:
        if piece not in seen:
            seen.add(piece)
            normal.append(piece)
    room = n_vocab - len(tokens)
    if room < len(normal):
        raise ValueError(
            f"n_vocab={n_vocab} is too small: need at least {len(tokens) + len(normal)}"
        )
    for bigram in bigrams:
        if len(normal) >= room:
            break
        if bigram not in seen:
            seen.add(bigram)
            normal.append(bigram)
    if len(normal) < room:
        raise ValueError(f"n_vocab={n_vocab} is too large for the tiny vocabulary generator")

    tokens += normal
    types += [gguf.TokenType.NORMAL] * len(normal)
    # SentencePiece scores: higher merges first. Longer pieces score higher, ties by order.
    scores: list[float] = []
    for i, (tok, ttype) in enumerate(zip(tokens, types, strict=True)):
        if ttype == gguf.TokenType.NORMAL:
            scores.append(float(len(tok)) * 10.0 - i * 0.001)
        else:
            scores.append(0.0)
    tokens += control
    scores += [0.0] * len(control)
    types += [gguf.TokenType.CONTROL] * len(control)
    return tokens, scores, [int(t) for t in types]


@contextmanager
def gguf_writer(path: Path, arch: str) -> Iterator[gguf.GGUFWriter]:
    """A writer for the ``with`` block to add keys and tensors to: it writes the file when the
    block ends without an error, and closes it either way."""
    writer = gguf.GGUFWriter(path, arch)
    try:
        yield writer
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


@dataclass(frozen=True)
class DecoderHParams:
    """A llama-style decoder's hyperparameters, for the ``add_decoder_*`` helpers; checked here
    for what llama.cpp can load, before anything is written."""

    context_length: int
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    rope_freq_base: float = 10000.0
    rms_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError("n_embd must be a multiple of n_head")
        if self.n_head % self.n_head_kv:
            raise ValueError("n_head must be a multiple of n_head_kv")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def add_decoder_header(
    writer: gguf.GGUFWriter,
    hp: DecoderHParams,
    *,
    name: str,
    file_type: gguf.LlamaFileType,
    rope_sections: Sequence[int] | None = None,
) -> None:
    """The general and hyperparameter keys of a llama-style decoder, in the order the fixtures'
    bytes depend on; ``rope_sections`` adds M-RoPE's ``rope.dimension_sections`` (Qwen2-VL)."""
    writer.add_name(name)
    writer.add_type("model")
    writer.add_file_type(int(file_type))
    writer.add_context_length(hp.context_length)
    writer.add_embedding_length(hp.n_embd)
    writer.add_block_count(hp.n_layer)
    writer.add_feed_forward_length(hp.n_ff)
    writer.add_head_count(hp.n_head)
    writer.add_head_count_kv(hp.n_head_kv)
    writer.add_rope_dimension_count(hp.head_dim)
    if rope_sections is not None:
        writer.add_rope_dimension_sections(list(rope_sections))
    writer.add_rope_freq_base(hp.rope_freq_base)
    writer.add_layer_norm_rms_eps(hp.rms_eps)
    writer.add_vocab_size(hp.n_vocab)


def add_spm_tokenizer(
    writer: gguf.GGUFWriter,
    tokens: list[str],
    scores: list[float],
    types: list[int],
    chat_template: str | None,
) -> None:
    """The SentencePiece tokenizer keys (a :func:`build_vocab` vocabulary, possibly extended) and
    the quantization version that closes the key block, as llama.cpp's converters write them."""
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK_ID)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def add_decoder_tensors(
    writer: gguf.GGUFWriter,
    rng: np.random.Generator,
    hp: DecoderHParams,
    *,
    dtype: npt.DTypeLike,
    qkv_bias: bool = False,
) -> None:
    """Random tensors of a llama-style decoder (GQA attention, SwiGLU MLP, untied output), drawn
    from ``rng`` in a fixed order so a seed always gives the same bytes. ``dtype`` is the 2-D
    matrices' (norms and biases stay F32); ``qkv_bias`` adds Qwen2's q/k/v biases."""

    def matrix(rows: int, cols: int) -> np.ndarray:
        # numpy shape (rows, cols) is GGUF shape [cols, rows]: cols is the contiguous dimension.
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.05).astype(dtype)

    def bias(n: int) -> np.ndarray:
        return rng.standard_normal(n, dtype=np.float32) * 0.05

    def norm(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    names = gguf.TENSOR_NAMES
    t = gguf.MODEL_TENSOR
    n_embd, n_ff = hp.n_embd, hp.n_ff
    kv_dim = hp.head_dim * hp.n_head_kv
    writer.add_tensor(names[t.TOKEN_EMBD] + ".weight", matrix(hp.n_vocab, n_embd))
    for i in range(hp.n_layer):
        writer.add_tensor(names[t.ATTN_NORM].format(bid=i) + ".weight", norm(n_embd))
        for part, rows in ((t.ATTN_Q, n_embd), (t.ATTN_K, kv_dim), (t.ATTN_V, kv_dim)):
            writer.add_tensor(names[part].format(bid=i) + ".weight", matrix(rows, n_embd))
            if qkv_bias:
                writer.add_tensor(names[part].format(bid=i) + ".bias", bias(rows))
        writer.add_tensor(names[t.ATTN_OUT].format(bid=i) + ".weight", matrix(n_embd, n_embd))
        writer.add_tensor(names[t.FFN_NORM].format(bid=i) + ".weight", norm(n_embd))
        writer.add_tensor(names[t.FFN_GATE].format(bid=i) + ".weight", matrix(n_ff, n_embd))
        writer.add_tensor(names[t.FFN_UP].format(bid=i) + ".weight", matrix(n_ff, n_embd))
        writer.add_tensor(names[t.FFN_DOWN].format(bid=i) + ".weight", matrix(n_embd, n_ff))
    writer.add_tensor(names[t.OUTPUT_NORM] + ".weight", norm(n_embd))
    writer.add_tensor(names[t.OUTPUT] + ".weight", matrix(hp.n_vocab, n_embd))


def write_tiny_gguf(
    path: Path | str,
    *,
    seed: int = 0,
    chat_template: str | None = DEFAULT_CHAT_TEMPLATE,
    context_length: int = 256,
    embedding: bool = False,
    file_type: str = "F32",
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_vocab: int = 512,
    name: str = "tiny-llama",
) -> Path:
    """Write a tiny random llama GGUF to ``path`` and return the path.

    ``chat_template``: the Jinja template stored as ``tokenizer.chat_template`` (a ChatML-style
    template by default; ``None`` writes none). ``embedding=True`` marks the model as an
    embedding model (mean pooling, non-causal attention). ``file_type``: ``"F32"`` or ``"F16"``
    for the 2-D weight matrices (norms stay F32, as llama.cpp's converters write them); both are
    valid sources for ``llama_model_quantize``. With the default ``n_embd=64`` K-quants fall back
    to a 32-block type for most tensors; pass ``n_embd=256, n_ff=256`` for rows that K-quants
    (block size 256) take as they are.
    """
    if file_type not in FILE_TYPES:
        raise ValueError(f"file_type must be one of {sorted(FILE_TYPES)}, not {file_type!r}")
    hp = DecoderHParams(context_length, n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff)
    ftype, dtype = FILE_TYPES[file_type]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    tokens, scores, types = build_vocab(n_vocab)
    rng = np.random.default_rng(seed)

    with gguf_writer(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA]) as writer:
        add_decoder_header(writer, hp, name=name, file_type=ftype)
        if embedding:
            writer.add_pooling_type(gguf.PoolingType.MEAN)
            writer.add_causal_attention(False)
        add_spm_tokenizer(writer, tokens, scores, types, chat_template)
        add_decoder_tensors(writer, rng, hp, dtype=dtype)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a tiny random-weight llama GGUF.")
    parser.add_argument("out", type=Path, help="output .gguf path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file-type", choices=sorted(FILE_TYPES), default="F32")
    parser.add_argument("--context-length", type=int, default=256)
    parser.add_argument("--embedding", action="store_true", help="mark it an embedding model")
    parser.add_argument("--no-chat-template", action="store_true")
    args = parser.parse_args(argv)
    out = write_tiny_gguf(
        args.out,
        seed=args.seed,
        file_type=args.file_type,
        context_length=args.context_length,
        embedding=args.embedding,
        chat_template=None if args.no_chat_template else DEFAULT_CHAT_TEMPLATE,
    )
    print(f"{out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

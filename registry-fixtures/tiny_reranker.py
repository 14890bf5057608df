"""Write a tiny random-weight reranker GGUF that llama.cpp loads with rank pooling.

The model is a BERT-architecture cross-encoder (the shape of bge-reranker and ms-marco MiniLM
GGUFs): token, token-type and position embeddings, a few non-causal encoder blocks, and the
classification head llama.cpp's ``LLAMA_POOLING_TYPE_RANK`` reads: ``cls`` (a dense layer and
tanh over the first token's state) and ``cls.output`` (one relevance logit). The vocabulary is a
small WordPiece one in llama.cpp's form (a word-initial piece carries ``▁``, a continuation none)
with ``[PAD] [UNK] [CLS] [SEP] [MASK]``. The weights are random (seeded), so the scores mean
nothing, but they differ per document and are the same on every run: the path from a request
to llama.cpp's score is real.

The output is deterministic: the same arguments always give the same bytes. The tests call
``write_tiny_reranker(path)`` (``tests/test_rerank_api.py``).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
from tiny_gguf import gguf_writer

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIALS))
WORD_START = "\u2581"  # llama.cpp's WPM marks word-initial pieces with it

_WORDS_TEXT = (
    "the a of to in is it and for on that with as what where when how who why which "
    "apple apples red green river sky blue fox quick brown jumps dog cat paris france capital "
    "city model image registry layer blob tag push pull serve chat rerank query document"
)


def build_vocab(n_vocab: int) -> tuple[list[str], list[int]]:
    """Tokens and token types of a WordPiece vocabulary of exactly ``n_vocab`` entries."""
    tokens = list(SPECIALS)
    types = [int(gguf.TokenType.CONTROL)] * len(SPECIALS)
    pieces = [WORD_START + w for w in _WORDS_TEXT.split()]
    pieces += [WORD_START + c for c in string.ascii_lowercase + string.digits]
    pieces += [WORD_START + c for c in ".,!?;:'\"-()"]
    pieces += list(string.ascii_lowercase + string.digits)
    letters = string.ascii_lowercase
    pieces += [a + b for a in letters for b in letters]  # continuation bigrams
    seen = set(tokens)
    for piece in pieces:
        if len(tokens) >= n_vocab:
            break
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
            types.append(int(gguf.TokenType.NORMAL))
    if len(tokens) < n_vocab:
        raise ValueError(f"n_vocab={n_vocab} is too large for the tiny WordPiece vocabulary")
    return tokens, types


def _namer(bid: int) -> Callable[..., str]:
    """``blk.<bid>.<tensor>.<suffix>`` names of one encoder block."""

    def name(kind: gguf.MODEL_TENSOR, suffix: str = "weight") -> str:
        return gguf.TENSOR_NAMES[kind].format(bid=bid) + "." + suffix

    return name


def write_tiny_reranker(
    path: Path | str,
    *,
    seed: int = 0,
    context_length: int = 512,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_ff: int = 128,
    n_vocab: int = 400,
    name: str = "tiny-reranker",
    rerank_template: str | None = None,
) -> Path:
    """Write the reranker to ``path`` and return the path. ``rerank_template``: a
    ``tokenizer.chat_template.rerank`` with ``{query}`` and ``{document}`` (Qwen3-Reranker's
    kind), which llama-server lays each pair out with; none by default."""
    if n_embd % n_head:
        raise ValueError("n_embd must be a multiple of n_head")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, types = build_vocab(n_vocab)
    rng = np.random.default_rng(seed)

    def matrix(rows: int, cols: int, scale: float = 0.1) -> np.ndarray:
        # numpy (rows, cols) is GGUF [cols, rows]: cols is the contiguous dimension.
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(np.float32)

    def vector(n: int, scale: float = 0.05) -> np.ndarray:
        return (rng.standard_normal(n, dtype=np.float32) * scale).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    with gguf_writer(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT]) as writer:
        writer.add_name(name)
        writer.add_type("model")
        writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
        writer.add_context_length(context_length)
        writer.add_embedding_length(n_embd)
        writer.add_block_count(n_layer)
        writer.add_feed_forward_length(n_ff)
        writer.add_head_count(n_head)
        writer.add_layer_norm_eps(1e-12)
        writer.add_causal_attention(False)
        writer.add_pooling_type(gguf.PoolingType.RANK)
        writer.add_vocab_size(n_vocab)

        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_type_count(2)
        writer.add_unk_token_id(UNK_ID)
        writer.add_pad_token_id(PAD_ID)
        writer.add_bos_token_id(CLS_ID)
        writer.add_sep_token_id(SEP_ID)
        writer.add_mask_token_id(MASK_ID)
        writer.add_add_bos_token(True)
        writer.add_add_sep_token(True)
        writer.add_add_eos_token(False)
        if rerank_template is not None:
            writer.add_chat_template([{"name": "rerank", "template": rerank_template}])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

        names = gguf.TENSOR_NAMES
        t = gguf.MODEL_TENSOR
        writer.add_tensor(names[t.TOKEN_EMBD] + ".weight", matrix(n_vocab, n_embd))
        writer.add_tensor(names[t.TOKEN_TYPES] + ".weight", matrix(2, n_embd))
        writer.add_tensor(names[t.POS_EMBD] + ".weight", matrix(context_length, n_embd))
        writer.add_tensor(names[t.TOKEN_EMBD_NORM] + ".weight", ones(n_embd))
        writer.add_tensor(names[t.TOKEN_EMBD_NORM] + ".bias", vector(n_embd))
        for i in range(n_layer):
            block = _namer(i)
            for kind in (t.ATTN_Q, t.ATTN_K, t.ATTN_V, t.ATTN_OUT):
                writer.add_tensor(block(kind), matrix(n_embd, n_embd))
                writer.add_tensor(block(kind, "bias"), vector(n_embd))
            writer.add_tensor(block(t.ATTN_OUT_NORM), ones(n_embd))
            writer.add_tensor(block(t.ATTN_OUT_NORM, "bias"), vector(n_embd))
            writer.add_tensor(block(t.FFN_UP), matrix(n_ff, n_embd))
            writer.add_tensor(block(t.FFN_UP, "bias"), vector(n_ff))
            writer.add_tensor(block(t.FFN_DOWN), matrix(n_embd, n_ff))
            writer.add_tensor(block(t.FFN_DOWN, "bias"), vector(n_embd))
            writer.add_tensor(block(t.LAYER_OUT_NORM), ones(n_embd))
            writer.add_tensor(block(t.LAYER_OUT_NORM, "bias"), vector(n_embd))
        # The classification head: dense + tanh over [CLS], then one logit.
        writer.add_tensor(names[t.CLS] + ".weight", matrix(n_embd, n_embd, scale=0.3))
        writer.add_tensor(names[t.CLS] + ".bias", vector(n_embd))
        writer.add_tensor(names[t.CLS_OUT] + ".weight", matrix(1, n_embd, scale=1.0))
        writer.add_tensor(names[t.CLS_OUT] + ".bias", vector(1))
    return path

"""Reranking inside the runner: query-document pairs through llama.cpp's rank pooling.

A reranker GGUF (pooling type rank: bge-reranker, Qwen3-Reranker, ...) is loaded with embeddings
on, as an embedding model is; what llama.cpp pools per sequence is then the classification
head's output, and its first value is the relevance score (what llama-server reports). Each pair
is laid out as llama-server lays it out: the model's ``rerank`` chat template with ``{query}``
and ``{document}`` filled in when the GGUF has one, else BOS, the query, EOS, SEP, the document,
EOS (each special only where the vocabulary adds it). Pairs are decoded together, as many per
batch as the context's batch and sequence limits allow.
"""

from __future__ import annotations

from typing import Any


class PairTooLong(ValueError):
    """A pair does not fit the context (and may not be cut)."""


def _tokens(llama: Any, text: str, *, special: bool = False) -> list[int]:
    return list(llama.tokenize(text.encode(), add_bos=False, special=special))


def rerank_template(llama: Any) -> str | None:
    """The GGUF's ``tokenizer.chat_template.rerank``, if it has one."""
    import llama_cpp

    raw = llama_cpp.llama_model_chat_template(llama._model.model, b"rerank")
    return raw.decode("utf-8", errors="replace") if raw else None


def _layout(llama: Any) -> tuple[list[int], list[int], list[int]]:
    """The specials of the template-less layout: (before the query, between, after the doc)."""
    import llama_cpp

    vocab = llama._model.vocab
    eos = llama_cpp.llama_vocab_eos(vocab)
    if eos == llama_cpp.LLAMA_TOKEN_NULL:
        eos = llama_cpp.llama_vocab_sep(vocab)
    add_eos = bool(llama_cpp.llama_vocab_get_add_eos(vocab))
    head = [llama_cpp.llama_vocab_bos(vocab)] if llama_cpp.llama_vocab_get_add_bos(vocab) else []
    middle = [eos] if add_eos else []
    if llama_cpp.llama_vocab_get_add_sep(vocab):
        middle.append(llama_cpp.llama_vocab_sep(vocab))
    tail = [eos] if add_eos else []
    return head, middle, tail


def pair_tokens(
    llama: Any, template: str | None, query: str, document: str, *, limit: int, truncate: bool
) -> list[int]:
    """The tokens of one (query, document) pair, at most ``limit`` of them: a longer pair gets
    its document cut (``truncate``) or raises :class:`PairTooLong`."""
    if template is not None:
        whole = _tokens(
            llama, template.replace("{query}", query).replace("{document}", document), special=True
        )
        if len(whole) <= limit:
            return whole
        before, _, after = template.partition("{document}")
        head = _tokens(llama, before.replace("{query}", query), special=True)
        tail = _tokens(llama, after.replace("{query}", query), special=True)
    else:
        first, middle, tail = _layout(llama)
        head = first + _tokens(llama, query) + middle
    doc = _tokens(llama, document)
    room = limit - len(head) - len(tail)
    if len(doc) <= room:
        return head + doc + tail
    if not truncate or room <= 0:
        raise PairTooLong(
            f"the input length ({len(head) + len(doc) + len(tail)} tokens) exceeds the context "
            f"length ({limit})"
        )
    return head + doc[:room] + tail


def score(llama: Any, pairs: list[list[int]]) -> list[float]:
    """llama.cpp's relevance score of each pair (its rank-pooled output's first value)."""
    import llama_cpp

    n_batch = llama.n_batch
    n_seq_max = max(int(llama.context_params.n_seq_max), 1)
    scores: list[float] = []
    batch = llama._batch
    pending: list[list[int]] = []

    def decode() -> None:
        batch.reset()
        for seq_id, tokens in enumerate(pending):
            batch.add_sequence(tokens, seq_id, True)
        llama._ctx.kv_cache_clear()
        llama._ctx.decode(batch)
        for seq_id in range(len(pending)):
            pooled = llama_cpp.llama_get_embeddings_seq(llama._ctx.ctx, seq_id)
            if not pooled:
                raise RuntimeError("llama.cpp pooled no score (is the pooling type rank?)")
            scores.append(float(pooled[0]))
        pending.clear()

    try:
        used = 0
        for tokens in pairs:
            if pending and (used + len(tokens) > n_batch or len(pending) >= n_seq_max):
                decode()
                used = 0
            pending.append(tokens)
            used += len(tokens)
        if pending:
            decode()
    finally:
        batch.reset()
        llama._ctx.kv_cache_clear()
        llama.reset()
    return scores


def is_reranker(llama: Any) -> bool:
    """Whether ``llama`` (loaded with embeddings on) pools with ``LLAMA_POOLING_TYPE_RANK``."""
    import llama_cpp

    return int(llama.pooling_type()) == llama_cpp.LLAMA_POOLING_TYPE_RANK


def rank(
    llama: Any, query: str, documents: list[str], *, truncate: bool
) -> tuple[list[float], int]:
    """(one score per document, tokens evaluated). Raises :class:`PairTooLong`."""
    template = rerank_template(llama)
    limit = min(int(llama.n_ctx()), int(llama.n_batch))
    pairs = [
        pair_tokens(llama, template, query, doc, limit=limit, truncate=truncate)
        for doc in documents
    ]
    return score(llama, pairs), sum(len(p) for p in pairs)

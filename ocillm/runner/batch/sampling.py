"""One llama.cpp sampler chain per sequence, built from the request's options.

The order is llama.cpp's own (``common/sampling.cpp``): grammar, penalties, top-k, typical,
top-p, min-p, temperature, then a seeded draw (greedy at temperature 0). The penalties sampler is
kept aside as well, so the prompt's tokens can enter its window without touching the grammar.

Greedy decoding with no grammar and neutral penalties changes no logit, so its token is the first
largest logit: numpy finds it in a pass over the row, where ``llama_sampler_sample`` first copies
the whole vocabulary into a candidate array (0.3 ms a row on Gemma's 262,144 tokens, 0.03 ms for
the pass; each decoding sequence pays it every step, on the loop's one thread). A chain with
top-k (Ollama's default, 40) or a greedy one with penalties runs on a shortlist of the tokens it
can pick instead of the whole vocabulary (:mod:`ocillm.runner.batch.shortlist`): the same token,
0.2 to 0.3 ms a row where the whole vocabulary took 0.33 (1.4 with a repeat penalty).

A grammar (``format``, a forced tool call) is not in the chain: the chain picks a token as it
does without one, then the grammar checks that one token, and only where it refuses it does the
grammar run over the whole vocabulary before the chain picks again, as llama.cpp's
``common_sampler`` and Ollama's sampler do. Greedy, that is the token the grammar-first chain
picks (the best token, if allowed, is the best allowed); at a temperature it follows llama.cpp
and Ollama, not the grammar-first chain's distribution. A grammar over Gemma's vocabulary takes
about 27 ms a row, so checking one token first is what makes ``format`` affordable.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import numpy as np

from ocillm.runner.batch.shortlist import allows, sample_from, shortlist
from ocillm.runner.protocol import CompletionRequest


class SamplerError(Exception):
    """The request's sampling cannot be built (a grammar llama.cpp does not parse)."""


def seed_of(requested: int) -> int:
    """llama.cpp's seed is a uint32 (0xFFFFFFFF means random); any int64 maps onto it."""
    if requested >= 0:
        return requested % 0xFFFFFFFF
    return random.SystemRandom().randrange(2**31)


class Sampler:
    def __init__(self, req: CompletionRequest, vocab: Any, n_vocab: int, n_ctx: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._n_vocab = n_vocab
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(params)
        add = self._add
        #: Kept out of the chain: it checks the chain's pick (see the module's note).
        self._grammar: Any = None
        if req.grammar:
            self._grammar = llama_cpp.llama_sampler_init_grammar(
                vocab, req.grammar.encode(), b"root"
            )
            if not self._grammar:
                self.close()
                raise SamplerError(
                    "invalid grammar: llama.cpp could not parse it (GBNF, rule 'root')"
                )
        last_n = n_ctx if req.repeat_last_n < 0 else req.repeat_last_n
        self._penalties = llama_cpp.llama_sampler_init_penalties(
            n_vocab, last_n, req.repeat_penalty, req.frequency_penalty, req.presence_penalty
        )
        add(self._penalties)
        neutral = _neutral(req, last_n)
        #: Greedy on the raw logits: the arg-max is the chain's answer (see the module's note).
        self.argmax = req.temperature <= 0 and neutral
        #: How many best raw logits hold the chain's pick besides the penalty window (0: the
        #: chain reads the whole vocabulary).
        self.shortlisted = 0 if self.argmax else shortlist_size(req, neutral, last_n, n_vocab)
        #: The penalty window's tokens, as the penalties sampler holds them, where they move
        #: logits (a shortlist must include them).
        self._window: deque[int] | None = None if neutral else deque(maxlen=last_n)
        if req.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
            return
        min_keep = 1
        if req.top_k > 0:
            add(llama_cpp.llama_sampler_init_top_k(req.top_k))
        add(llama_cpp.llama_sampler_init_typical(req.typical_p, min_keep))
        add(llama_cpp.llama_sampler_init_top_p(req.top_p, min_keep))
        add(llama_cpp.llama_sampler_init_min_p(req.min_p, min_keep))
        add(llama_cpp.llama_sampler_init_temp(req.temperature))
        add(llama_cpp.llama_sampler_init_dist(seed_of(req.seed)))

    def _add(self, sampler: Any) -> None:
        self._lib.llama_sampler_chain_add(self._chain, sampler)

    def remember(self, tokens: list[int]) -> None:
        """Put prompt tokens in the penalty window (the grammar never sees them)."""
        for token in tokens:
            self._lib.llama_sampler_accept(self._penalties, token)
        if self._window is not None:
            self._window.extend(tokens)

    def sample(self, ctx: Any, index: int) -> int:
        """Sample from the logits of batch row ``index`` and accept the token into the chain."""
        lib = self._lib
        if self._grammar is None and not self.argmax and not self.shortlisted:
            token = int(lib.llama_sampler_sample(self._chain, ctx, index))
        else:
            pointer = lib.llama_get_logits_ith(ctx, index)
            if not pointer:
                raise RuntimeError(f"llama.cpp has no logits for batch row {index}")
            logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
            token = self._pick(logits)
            if self._grammar is not None:
                if not allows(lib, self._grammar, token):
                    everything = np.arange(self._n_vocab)
                    token = sample_from(lib, self._chain, logits, everything, self._grammar)
                lib.llama_sampler_accept(self._grammar, token)
            lib.llama_sampler_accept(self._chain, token)  # the penalty window follows
        if self._window is not None:
            self._window.append(token)
        return token

    def sample_grammar_first(self, ctx: Any, index: int) -> int:
        """:meth:`sample` as one chain with the grammar first would: the grammar over every
        token, then the chain. Not used to serve; the reference that :meth:`sample` is held to
        (greedy, the same tokens) and measured against."""
        lib = self._lib
        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, index), shape=(self._n_vocab,))
        everything = np.arange(self._n_vocab)
        token = sample_from(lib, self._chain, logits, everything, self._grammar)
        if self._grammar is not None:
            lib.llama_sampler_accept(self._grammar, token)
        lib.llama_sampler_accept(self._chain, token)
        if self._window is not None:
            self._window.append(token)
        return token

    def _pick(self, logits: np.ndarray) -> int:
        """The chain's token from a row, not yet accepted (and not yet checked by a grammar)."""
        if self.argmax:
            # np.argmax takes the first of equal maxima, as llama.cpp's greedy sampler does.
            return int(logits.argmax())
        if self.shortlisted:
            window = set(self._window) if self._window is not None else set()
            ids = shortlist(logits, self.shortlisted + len(window), window)
        else:
            ids = np.arange(self._n_vocab)
        return sample_from(self._lib, self._chain, logits, ids)

    def close(self) -> None:
        if self._chain is not None:
            self._lib.llama_sampler_free(self._chain)  # frees every sampler in the chain
            self._chain = None
        if self._grammar is not None:
            self._lib.llama_sampler_free(self._grammar)
            self._grammar = None


def _neutral(req: CompletionRequest, last_n: int) -> bool:
    """Penalties llama.cpp skips, leaving the logits untouched (a value that is neutral only once
    rounded to 32 bits takes the chain, which gives the same token)."""
    plain = req.repeat_penalty == 1 and req.frequency_penalty == 0 and req.presence_penalty == 0
    return last_n == 0 or plain


def shortlist_size(req: CompletionRequest, neutral: bool, last_n: int, n_vocab: int) -> int:
    """The best raw logits a shortlist takes (besides the penalty window) for the chain to pick
    as from the whole vocabulary: its top-k, 1 for greedy; 0 for no top-k or a shortlist as
    large as half the vocabulary. (A grammar checks the pick afterwards.)"""
    best = 1 if req.temperature <= 0 else req.top_k
    window = 0 if neutral else min(last_n, n_vocab)
    return best if best > 0 and 2 * (best + window) <= n_vocab else 0

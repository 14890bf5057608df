"""Log probabilities from a decode step's logits (raw: before penalties, grammar or temperature,
as llama-server's ``n_probs`` reports them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ocillm.runner.protocol import TokenLogprob, TopLogprob


def step_logprobs(logits: Any, n_vocab: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """log softmax of one row of logits (a ctypes float pointer), copied out of llama.cpp."""
    row = np.ctypeslib.as_array(logits, shape=(n_vocab,)).astype(np.float32, copy=True)
    top = float(row.max())
    row -= top + np.log(np.exp(row - top).sum(dtype=np.float64)).astype(np.float32)
    return row


def token_logprob(
    logprobs: np.ndarray[Any, np.dtype[np.float32]],
    token: int,
    top_n: int,
    piece: Callable[[int], bytes],
) -> TokenLogprob:
    def entry(t: int) -> TopLogprob:
        data = piece(t)
        return TopLogprob(
            token=data.decode("utf-8", errors="replace"),
            logprob=float(logprobs[t]),
            bytes=list(data),
        )

    top: list[TopLogprob] = []
    if top_n > 0:
        best = np.argpartition(-logprobs, top_n - 1)[:top_n]
        top = [entry(int(t)) for t in sorted(best, key=lambda t: -float(logprobs[t]))]
    chosen = entry(token)
    return TokenLogprob(**chosen.model_dump(), top_logprobs=top)

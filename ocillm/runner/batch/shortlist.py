"""The few tokens a top-k sampler chain can pick, found without copying the vocabulary.

``llama_sampler_sample`` copies every logit into a candidate array before the chain's top-k
keeps ``k`` of them, and a penalties sampler visits every candidate: on Gemma's 262,144 tokens
0.33 ms a row at Ollama's defaults, 1.4 ms with a repeat penalty, on the decode loop's one
thread, for every sequence every step. The chain picks among the ``k`` best logits
after the penalties, which change only the logits of the tokens in the penalty window, ``W``.
Those ``k`` are among the ``k + |W|`` best raw logits and ``W`` itself: a token outside the
window that is beaten by another outside it in raw order is beaten after the penalties too, so
at most ``k - 1`` of them and the window's tokens come before any of the ``k``.

The ``k + |W|`` best are found from block maxima: cut into blocks, the vocabulary's
``(k + |W|)``-th largest block maximum is at most its ``(k + |W|)``-th largest logit (that many
blocks each hold a logit at least as large), so every logit at or above it is kept. The chain
then runs on that shortlist in token order, as it runs on the whole array in token order: the
same samplers see the same ``k`` tokens and draw the same token from the same random state.
"""

from __future__ import annotations

import ctypes
from collections.abc import Collection
from typing import Any

import numpy as np

#: Logits per block: its maxima take one vectorised pass, and few blocks leave few to partition.
BLOCK = 256

#: llama.cpp's ``llama_token_data``: id, logit, probability.
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


def shortlist(logits: np.ndarray, best: int, also: Collection[int] = ()) -> np.ndarray:
    """Token ids in ascending order: at least every one whose logit is among the ``best``
    largest (ties included), and those in ``also``."""
    n = int(logits.shape[0])
    if best >= n:
        return np.arange(n)
    # At least twice as many blocks as ``best``: the floor then sits well inside the top.
    width = max(1, min(BLOCK, n // (2 * best)))
    whole = n - n % width
    maxima = logits[:whole].reshape(-1, width).max(axis=1)
    if whole < n:
        maxima = np.append(maxima, logits[whole:].max())
    floor = np.partition(maxima, maxima.shape[0] - best)[maxima.shape[0] - best]
    ids = np.flatnonzero(logits >= floor)
    if also:
        ids = np.union1d(ids, np.fromiter(also, dtype=np.int64, count=len(also)))
    return ids


def sample_from(
    lib: Any, chain: Any, logits: np.ndarray, ids: np.ndarray, first: Any = None
) -> int:
    """The token ``chain`` selects from the candidates ``ids`` (not yet accepted into it), after
    the sampler ``first`` (a grammar) where one is given."""
    candidates = np.zeros(ids.shape[0], dtype=TOKEN_DATA)
    candidates["id"] = ids
    candidates["logit"] = logits[ids]
    array = lib.llama_token_data_array(
        data=candidates.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)),
        size=ids.shape[0],
        selected=-1,
        sorted=False,
    )
    if first is not None:
        lib.llama_sampler_apply(first, ctypes.byref(array))
    lib.llama_sampler_apply(chain, ctypes.byref(array))
    if not 0 <= array.selected < array.size:
        raise RuntimeError(f"the sampler chain selected no token ({array.selected})")
    return int(array.data[array.selected].id)


def allows(lib: Any, grammar: Any, token: int) -> bool:
    """Whether the grammar sampler, in its present state, lets ``token`` through (it sets a
    refused candidate's logit to minus infinity; its state moves only on accept)."""
    one = np.zeros(1, dtype=TOKEN_DATA)
    one["id"], one["logit"] = token, 1.0
    array = lib.llama_token_data_array(
        data=one.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)),
        size=1,
        selected=-1,
        sorted=False,
    )
    lib.llama_sampler_apply(grammar, ctypes.byref(array))
    return bool(np.isfinite(one["logit"][0]))

"""Filling a ``llama_batch``: one token, its position, its one sequence, whether it wants logits."""

from __future__ import annotations

from typing import Any


def put(batch: Any, token: int, pos: int, seq_id: int, *, logits: bool) -> int:
    """Append a row to ``batch`` and return its index (the one ``llama_get_logits_ith`` takes)."""
    i = int(batch.n_tokens)
    batch.token[i] = token
    batch.pos[i] = pos
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq_id
    batch.logits[i] = logits
    batch.n_tokens = i + 1
    return i

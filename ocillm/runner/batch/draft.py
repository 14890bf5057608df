"""The draft model of speculative decoding: a second, smaller context that proposes the next few
tokens of each sequence greedily, for the target to check in its one batch.

The draft keeps its own KV cache per sequence (the same sequence ids as the target) and catches up
on what the target accepted before it proposes: only the tokens it has not seen are decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ocillm.runner.batch.rows import put


@dataclass
class Proposal:
    """What one sequence asks the draft for: its history, the pending token, how many."""

    seq_id: int
    history: list[int]  # the tokens in the target's KV cache for this sequence
    pending: int  # sampled, not yet decoded by either model
    count: int
    tokens: list[int] | None = None  # the answer


class Drafter:
    def __init__(self, llama: Any, n_seq: int, n_batch: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._llama = llama
        self._ctx = llama._ctx.ctx
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.n_vocab = int(llama.n_vocab())
        self.n_batch = max(n_batch, n_seq)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._held: list[list[int]] = [[] for _ in range(n_seq)]  # the draft's KV, per sequence

    def forget(self, seq_id: int) -> None:
        self._lib.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
        self._held[seq_id] = []

    def propose(self, asks: list[Proposal]) -> None:
        """Fill each proposal's ``tokens`` with up to ``count`` greedy draft tokens (fewer if the
        draft cannot decode: the target then simply decodes without a draft)."""
        rows: dict[int, int] = {}  # seq_id -> the batch row of its last token
        feeds: dict[int, list[int]] = {}
        for ask in asks:
            wanted = [*ask.history, ask.pending]
            held = self._held[ask.seq_id]
            keep = 0
            for a, b in zip(held, wanted, strict=False):
                if a != b:
                    break
                keep += 1
            keep = min(keep, len(wanted) - 1)  # the last token is decoded again for its logits
            if not self._lib.llama_memory_seq_rm(self._memory, ask.seq_id, keep, -1):
                self.forget(ask.seq_id)
                keep = 0
            del held[keep:]
            feeds[ask.seq_id] = wanted[keep:]
            ask.tokens = []
        # Catch up (in batch-sized pieces: the first proposal after a prompt feeds it whole).
        while any(feeds.values()):
            self._batch.n_tokens = 0
            rows.clear()
            for ask in asks:
                feed = feeds[ask.seq_id]
                room = self.n_batch - int(self._batch.n_tokens)
                if not feed or room <= 0:
                    continue
                part, feeds[ask.seq_id] = feed[:room], feed[room:]
                done = not feeds[ask.seq_id]
                for i, token in enumerate(part):
                    last = done and i == len(part) - 1
                    rows[ask.seq_id] = self._add(token, ask.seq_id, logits=last)
            if not self._decode(asks):
                return
        # Then one greedy token per step, every sequence together.
        self._pick(asks, rows)
        for _ in range(max(a.count for a in asks) - 1):
            self._batch.n_tokens = 0
            rows = {}
            for ask in asks:
                if ask.tokens and len(ask.tokens) < ask.count:
                    rows[ask.seq_id] = self._add(ask.tokens[-1], ask.seq_id, logits=True)
            if not rows or not self._decode(asks):
                return
            self._pick([a for a in asks if a.seq_id in rows], rows)

    def _pick(self, asks: list[Proposal], rows: dict[int, int]) -> None:
        for ask in asks:
            if ask.seq_id not in rows or ask.tokens is None or len(ask.tokens) >= ask.count:
                continue
            logits = self._lib.llama_get_logits_ith(self._ctx, rows[ask.seq_id])
            row = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
            ask.tokens.append(int(np.argmax(row)))

    def _decode(self, asks: list[Proposal]) -> bool:
        if self._lib.llama_decode(self._ctx, self._batch) == 0:
            return True
        for ask in asks:  # a failed draft is no failure of the request: propose nothing
            self.forget(ask.seq_id)
            ask.tokens = []
        return False

    def _add(self, token: int, seq_id: int, *, logits: bool) -> int:
        held = self._held[seq_id]
        held.append(token)
        return put(self._batch, token, len(held) - 1, seq_id, logits=logits)

    def close(self) -> None:
        self._lib.llama_batch_free(self._batch)
        self._llama.close()

"""The decode loop: one thread, one context, every running sequence advanced by one batch a step.

A step's batch carries the next token of every decoding sequence first, then prompt chunks of
newly admitted ones up to ``n_batch`` tokens in all (chunked prefill), so a long prompt arriving
stalls the running streams for one chunk at most. A picture's embeddings are chunked the same
way, in a decode of their own in the step. Only this thread touches the context; request
threads enqueue a :class:`Job` and read its chunks from a queue.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ocillm.runner.batch.draft import Drafter, Proposal
from ocillm.runner.batch.logprobs import step_logprobs, token_logprob
from ocillm.runner.batch.pacing import PrefillPacer
from ocillm.runner.batch.rows import put
from ocillm.runner.batch.sampling import Sampler
from ocillm.runner.batch.text import Utf8Stream
from ocillm.runner.protocol import CompletionChunk, CompletionRequest, TokenLogprob
from ocillm.runner.stops import StopScanner
from ocillm.runner.vision import ImageBatch, ImageRun

log = logging.getLogger(__name__)


class DecodeError(Exception):
    """llama.cpp could not decode a batch; the sequences in it end with this error."""


@dataclass
class Slot:
    """One sequence id of the context and the tokens its KV cells hold, position by position."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    reusable: int = 0  # leading tokens whose KV equals a fresh evaluation (less after a shift)
    busy: bool = False
    last_used: int = 0

    def shared_prefix(self, tokens: list[int]) -> int:
        n = 0
        for a, b in zip(self.tokens[: self.reusable], tokens, strict=False):
            if a != b:
                break
            n += 1
        return n


@dataclass
class Job:
    """One completion request in the loop."""

    req: CompletionRequest
    prompt: list[int]
    sampler: Sampler
    cancelled: Callable[[], bool]
    stops: StopScanner
    images: tuple[ImageRun, ...] = ()  # where ``prompt`` holds pictures, in order
    utf8: Utf8Stream = field(default_factory=Utf8Stream)
    out: queue.Queue[CompletionChunk | Exception | None] = field(default_factory=queue.Queue)
    abandoned: bool = False  # the reader closed its stream
    slot: Slot | None = None
    evaluated: int = 0  # prompt tokens in the KV cache
    cached: int = 0  # of which were found there
    next_token: int | None = None  # sampled, to be decoded next step
    generated: int = 0
    shifted: bool = False
    drafted: int = 0  # draft tokens the target checked
    accepted: int = 0  # of which it sampled too
    t_start: int = 0
    t_first: int = 0

    def run_at(self, index: int) -> ImageRun | None:
        """The picture whose rows include prompt index ``index``."""
        return next((run for run in self.images if run.start <= index < run.end), None)

    def position(self, index: int) -> int:
        """The sequence position of the text token at ``index`` of the prompt and what follows:
        the index, less what M-RoPE pictures before it take fewer positions than tokens."""
        return index - sum(run.position_gap for run in self.images if run.end <= index)

    def text_until(self, index: int) -> int:
        """Where the prompt's text from ``index`` ends: its next picture (``index`` itself
        inside one), or its end."""
        return next(
            (max(run.start, index) for run in self.images if run.end > index), len(self.prompt)
        )

    def chunks(self, wake: Callable[[], None]) -> Iterator[CompletionChunk]:
        try:
            while True:
                item = self.out.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.abandoned = True
            wake()


def _choose(free: list[Slot], prompt: list[int]) -> Slot:
    """The free sequence whose cache this prompt keeps the most of, where it keeps at least half
    of it (as llama-server's slot similarity does); otherwise the least recently used one, so
    a new conversation does not evict one that another client is about to continue."""
    reuse = [(s.shared_prefix(prompt), s) for s in free]
    good = [(n, s) for n, s in reuse if n > 0 and 2 * n >= len(s.tokens)]
    if good:
        return max(good, key=lambda pair: pair[0])[1]
    return min(free, key=lambda s: s.last_used)


class DecodeLoop:
    def __init__(
        self,
        llama: Any,
        n_seq: int,
        n_batch: int,
        n_ctx: int,
        drafter: Drafter | None = None,
        images: ImageBatch | None = None,
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._llama = llama
        self._ctx = llama._ctx.ctx
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._vocab = llama._model.vocab
        self._drafter = drafter
        self._images = images
        self._n_vocab = int(llama.n_vocab())
        # What was asked for: llama.cpp rounds each sequence's cells up to a multiple of 256.
        self.n_ctx = min(int(llama_cpp.llama_n_ctx_seq(self._ctx)), n_ctx)
        # No more than the context takes in one decode (llama-cpp-python caps it at n_ctx).
        self.n_batch = min(max(n_batch, n_seq), int(llama_cpp.llama_n_batch(self._ctx)))
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.pacer = PrefillPacer(self.n_batch)
        self._slots = [Slot(seq_id=i) for i in range(n_seq)]
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []
        self._cv = threading.Condition()
        self._closing = False
        self._uses = 0
        self._piece = ctypes.create_string_buffer(256)
        # (tokens, sequences) of each recent step: the tests and the benchmark read it.
        self.history: deque[tuple[int, int]] = deque(maxlen=4096)
        self._seqs_in_batch: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="decode-loop", daemon=True)
        self._thread.start()

    # --- the request side ---------------------------------------------------------------

    def submit(self, job: Job) -> Iterator[CompletionChunk]:
        job.t_start = time.perf_counter_ns()
        with self._cv:
            self._waiting.append(job)
            self._cv.notify()
        return job.chunks(self._wake)

    def _wake(self) -> None:
        with self._cv:
            self._cv.notify()

    @property
    def slots(self) -> tuple[int, int]:
        """(idle, busy) sequences."""
        busy = sum(s.busy for s in self._slots)
        return len(self._slots) - busy, busy

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout=30)
        self._lib.llama_batch_free(self._batch)
        if self._images is not None:
            self._images.close()
        if self._drafter is not None:
            self._drafter.close()

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._waiting and not self._running:
                    self._cv.wait()
                if self._closing:
                    break
            try:
                self._step()
            except Exception as err:  # never leave readers waiting on a dead loop
                log.exception("decode loop step failed")
                for job in self._running:
                    self._end(job, DecodeError(f"{type(err).__name__}: {err}"))

    def _step(self) -> None:
        self._drop_waiting_cancelled()
        self._admit()
        for job in list(self._running):
            if job.abandoned or job.cancelled():
                self._end(job, None)
        rows: list[tuple[Job, list[int], list[int]]] = []  # job, batch rows, draft tokens
        batch = self._batch
        batch.n_tokens = 0
        self._seqs_in_batch.clear()
        decoding = []
        for job in list(self._running):
            if job.next_token is None:
                continue
            slot = self._slot(job)
            if len(slot.tokens) >= self.n_ctx and not self._shift(job, slot):
                self._finish(job, "length")
                continue
            decoding.append(job)
        drafts = self._drafts(decoding)
        for job in decoding:
            slot = self._slot(job)
            assert job.next_token is not None
            pos = job.position(len(slot.tokens))
            indices = [self._add(job.next_token, pos, slot, logits=True)]
            slot.tokens.append(job.next_token)
            job.next_token = None
            proposed = drafts.get(id(job), [])
            for j, token in enumerate(proposed):
                indices.append(self._add(token, pos + 1 + j, slot, logits=True))
            job.drafted += len(proposed)
            rows.append((job, indices, proposed))
        budget = self.n_batch - batch.n_tokens
        outputs = int(batch.n_tokens)  # rows with logits: every decoding row so far
        if decoding:
            # Running streams wait for the whole step: a measured prefill chunk keeps their
            # inter-token gap near its usual size while a long prompt arrives.
            budget = min(budget, self.pacer.budget(outputs))
        started = time.perf_counter()
        prompt_tokens = self._decode_picture(budget if decoding else None)
        picture_s = time.perf_counter() - started
        budget -= prompt_tokens
        for job in self._running:
            if budget <= 0:
                break
            if job.evaluated >= len(job.prompt):
                continue
            slot = self._slot(job)
            end = min(job.text_until(job.evaluated), job.evaluated + budget)
            if end == job.evaluated:
                continue  # a picture comes next: decoded on its own, from next step
            gap = job.evaluated - job.position(job.evaluated)  # no picture in this chunk
            for i in range(job.evaluated, end):
                index = self._add(job.prompt[i], i - gap, slot, logits=i == len(job.prompt) - 1)
            slot.tokens.extend(job.prompt[job.evaluated : end])
            budget -= end - job.evaluated
            prompt_tokens += end - job.evaluated
            job.evaluated = end
            if end == len(job.prompt):
                rows.append((job, [index], []))
                outputs += 1  # the prompt's last token wants logits: a row like a decoding one
                prompt_tokens -= 1
        if batch.n_tokens == 0:
            return
        self.history.append((int(batch.n_tokens), len(self._seqs_in_batch)))
        started = time.perf_counter()
        status = self._lib.llama_decode(self._ctx, batch)
        if status != 0:
            in_batch = {id(job) for job, _, _ in rows} | {
                id(j) for j in self._running if j.evaluated < len(j.prompt)
            }
            for job in list(self._running):
                if id(job) in in_batch:
                    self._forget(self._slot(job))
                    self._end(job, DecodeError(f"llama_decode returned {status}"))
            return
        now = time.perf_counter_ns()
        for job, indices, proposed in rows:
            if job.t_first == 0:
                job.t_first = now
            self._accept(job, indices, proposed)
        # Timed up to the sampled tokens: a GPU decode returns before it is done (and so may
        # the picture's, whose time then lands here too).
        seconds = picture_s + time.perf_counter() - started
        self.pacer.observe(len(decoding), outputs, prompt_tokens, seconds)

    def _decode_picture(self, limit: int | None) -> int:
        """Rows of one picture, where a prompt's turn has come to it, in a decode of their own
        (a batch carries tokens or embeddings, not both): at most ``limit`` while streams are
        decoding, so the rest go in later steps as a text prompt's chunks do; the whole picture
        when no stream waits, and always where the model attends to it all at once (Gemma 3).
        Returns how many rows were decoded."""
        if self._images is None or (limit is not None and limit <= 0):
            return 0
        for job in self._running:
            run = job.run_at(job.evaluated)
            if run is None:
                continue
            first = job.evaluated - run.start
            count = run.n_tokens - first
            if limit is not None and not run.non_causal:
                count = min(count, limit)
            slot = self._slot(job)
            status = self._images.decode(run, job.position(run.start), slot.seq_id, first, count)
            self.history.append((count, 1))
            if status != 0:
                self._forget(slot)
                self._end(job, DecodeError(f"llama_decode returned {status} for an image"))
                return 0
            slot.tokens.extend(job.prompt[job.evaluated : job.evaluated + count])
            job.evaluated += count
            return count
        return 0

    def _accept(self, job: Job, indices: list[int], proposed: list[int]) -> None:
        """Sample each row in turn; a draft token the target samples too is already in the KV
        cache (accepted); at the first it does not, the rest of the draft is dropped. Every
        sampled token went through the sampler chain in order, as without a draft, so the
        output is the same."""
        slot = self._slot(job)
        for j, index in enumerate(indices):
            wants = job.req.logprobs or job.req.top_logprobs > 0
            logprobs = (
                step_logprobs(self._lib.llama_get_logits_ith(self._ctx, index), self._n_vocab)
                if wants
                else None
            )
            token = job.sampler.sample(self._ctx, index)
            lp = None
            if logprobs is not None:
                lp = token_logprob(logprobs, token, job.req.top_logprobs, self._token_bytes)
            accepted = j < len(proposed) and token == proposed[j]
            if accepted:
                job.accepted += 1
            self._sampled(job, token, lp)
            if accepted and job.next_token is not None:
                slot.tokens.append(token)  # decoded already, as the draft's row j
                job.next_token = None
                continue
            break
        if proposed:  # the KV cells of rejected draft tokens (or of all, if the job ended)
            end = job.position(len(slot.tokens))
            self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, end, -1)

    def _drafts(self, decoding: list[Job]) -> dict[int, list[int]]:
        """Draft tokens for each decoding job that wants them, within the context, the batch
        and ``num_predict``."""
        if self._drafter is None:
            return {}
        # A prompt with pictures is not drafted: the draft model cannot read them.
        wanting = [j for j in decoding if j.req.draft_num_predict > 0 and not j.images]
        if not wanting:
            return {}
        room = (self.n_batch - len(decoding)) // len(wanting)
        asks: list[tuple[Job, Proposal]] = []
        for job in wanting:
            slot = self._slot(job)
            count = min(job.req.draft_num_predict, room, self.n_ctx - len(slot.tokens) - 1)
            if job.req.num_predict > 0:
                count = min(count, job.req.num_predict - job.generated)
            if count > 0 and job.next_token is not None:
                ask = Proposal(slot.seq_id, list(slot.tokens), job.next_token, count)
                asks.append((job, ask))
        if not asks:
            return {}
        self._drafter.propose([ask for _, ask in asks])
        return {id(job): ask.tokens or [] for job, ask in asks}

    # --- admission, sampling, ending ----------------------------------------------------

    def _drop_waiting_cancelled(self) -> None:
        with self._cv:
            waiting = list(self._waiting)
        for job in waiting:
            if job.abandoned or job.cancelled():
                with self._cv:
                    self._waiting.remove(job)
                job.sampler.close()
                job.out.put(None)

    def _admit(self) -> None:
        while True:
            with self._cv:
                free = [s for s in self._slots if not s.busy]
                if not free or not self._waiting:
                    return
                job = self._waiting.popleft()
            slot = _choose(free, job.prompt)
            self._uses += 1
            slot.last_used = self._uses
            # At least the prompt's last token is evaluated: its logits give the first sample.
            keep = min(slot.shared_prefix(job.prompt), len(job.prompt) - 1)
            for run in job.images:  # a picture is kept whole or not at all (one half decoded
                # when its request was cancelled is decoded anew)
                if run.start < keep < run.end:
                    keep = run.start
            # (The cells from ``keep`` on hold the positions this prompt gives them too: the
            # same tokens and pictures come before.)
            if not self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, job.position(keep), -1):
                self._forget(slot)  # no partial removal (recurrent models): start over
                keep = 0
            del slot.tokens[keep:]
            slot.reusable = keep
            slot.busy = True
            job.slot = slot
            job.evaluated = job.cached = keep
            job.sampler.remember([t for t in job.prompt if t >= 0])  # not the pictures
            self._running.append(job)

    def _sampled(self, job: Job, token: int, logprob: TokenLogprob | None) -> None:
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            self._finish(job, "stop")
            return
        job.generated += 1
        text = job.stops.add(job.utf8.feed(self._token_bytes(token)))
        if text or logprob is not None:
            job.out.put(CompletionChunk(content=text, logprobs=[logprob] if logprob else None))
        limit = job.req.num_predict if job.req.num_predict > 0 else self.n_ctx
        if job.stops.matched is not None:
            self._finish(job, "stop")
        elif job.generated >= limit:
            self._finish(job, "length")
        else:
            job.next_token = token

    def _shift(self, job: Job, slot: Slot) -> bool:
        """Make room as Ollama does: keep ``num_keep`` tokens, drop half of the rest. False when
        the request asked not to (``shift`` off, ``num_predict`` -2) or the model cannot."""
        if not job.req.shift or job.req.num_predict == -2 or job.images:
            return False  # (a shift could cut a picture in two)
        if not self._lib.llama_memory_can_shift(self._memory):
            return False
        keep = len(job.prompt) if job.req.num_keep < 0 else job.req.num_keep
        keep = min(keep, self.n_ctx // 2)
        discard = (len(slot.tokens) - keep) // 2
        if discard <= 0:
            return False
        mem, seq = self._memory, slot.seq_id
        self._lib.llama_memory_seq_rm(mem, seq, keep, keep + discard)
        self._lib.llama_memory_seq_add(mem, seq, keep + discard, -1, -discard)
        del slot.tokens[keep : keep + discard]
        slot.reusable = min(slot.reusable, keep)
        job.shifted = True
        return True

    def _finish(self, job: Job, reason: str) -> None:
        tail = "" if job.stops.matched is not None else job.stops.add(job.utf8.flush())
        tail += job.stops.finish()
        if tail:
            job.out.put(CompletionChunk(content=tail))
        end = time.perf_counter_ns()
        first = job.t_first or end
        job.out.put(
            CompletionChunk(
                done=True,
                done_reason="length" if reason == "length" else "stop",
                prompt_eval_count=len(job.prompt),
                prompt_cached=job.cached,
                prompt_eval_duration=max(first - job.t_start, 1),
                eval_count=job.generated,
                eval_duration=max(end - first, 1),
                context_shifted=job.shifted or None,
                draft_count=job.drafted if self._drafter is not None else None,
                draft_accepted=job.accepted if self._drafter is not None else None,
                stop_sequence=job.stops.matched,
            )
        )
        self._end(job, None)

    def _end(self, job: Job, error: Exception | None) -> None:
        """Free the job's sequence and close its stream: with ``error`` raised to the reader, or
        plainly (a cancelled request's stream ends without a ``done`` chunk)."""
        if job in self._running:
            self._running.remove(job)
        if job.slot is not None:
            job.slot.busy = False
            if not job.shifted:
                job.slot.reusable = len(job.slot.tokens)
        job.sampler.close()
        job.out.put(error)

    def _forget(self, slot: Slot) -> None:
        self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        if self._drafter is not None:
            self._drafter.forget(slot.seq_id)
        slot.tokens.clear()
        slot.reusable = 0

    # --- helpers ------------------------------------------------------------------------

    def _slot(self, job: Job) -> Slot:
        assert job.slot is not None
        return job.slot

    def _add(self, token: int, pos: int, slot: Slot, *, logits: bool) -> int:
        self._seqs_in_batch.add(slot.seq_id)
        return put(self._batch, token, pos, slot.seq_id, logits=logits)

    def _token_bytes(self, token: int) -> bytes:
        buf = self._piece
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:  # a longer piece than the buffer: grow it once
            self._piece = buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return bytes(buf.raw[:n])

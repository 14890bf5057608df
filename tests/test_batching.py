"""Continuous batching in one context, in-process on the tiny model: sequences do not leak into
each other, long prompts are prefilled in chunks beside running streams, a full context shifts
or ends, and a cancelled request frees its sequence within a step."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocillm.runner.batch.pacing import GAP_RATIO, PrefillPacer
from ocillm.runner.batch.text import Utf8Stream
from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.protocol import CompletionChunk, CompletionRequest, TokenLogprob

PROMPTS = [
    "<|im_start|>user\nthe registry holds every model<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nwhy is the sky blue<|im_end|>\n<|im_start|>assistant\n",
    "hello",
    "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\na b c d e f g<|im_end|>\n",
]


@pytest.fixture(scope="module")
def engine(tiny_gguf: Path) -> Iterator[Engine]:
    e = Engine(EngineConfig(model=tiny_gguf, n_ctx=256, n_parallel=4, n_batch=64))
    yield e
    e.close()


def _greedy(prompt: str, n: int = 24) -> CompletionRequest:
    return CompletionRequest(prompt=prompt, temperature=0, num_predict=n, seed=0)


def _text(chunks: list[CompletionChunk]) -> str:
    return "".join(c.content for c in chunks)


def _concurrently(engine: Engine, requests: list[CompletionRequest]) -> list[list[CompletionChunk]]:
    results: list[list[CompletionChunk]] = [[] for _ in requests]
    start = threading.Barrier(len(requests))

    def run(i: int) -> None:
        start.wait()
        results[i] = list(engine.complete(requests[i]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def _submitted_together(
    engine: Engine, requests: list[CompletionRequest]
) -> list[Iterator[CompletionChunk]]:
    """Every request queued before the loop's next step: on the tiny model a step takes well
    under a millisecond, so requests merely submitted in a row can miss each other (the first
    finished before the last was queued, on a loaded machine). The loop waits on this lock
    before each step."""
    assert engine._loop is not None
    with engine._loop._cv:
        return [engine.complete(r) for r in requests]


def test_concurrent_greedy_requests_match_each_alone(engine: Engine) -> None:
    alone = [_text(list(engine.complete(_greedy(p)))) for p in PROMPTS]
    assert len(set(alone)) > 1  # distinct prompts, distinct answers: a leak would show
    assert engine._loop is not None
    engine._loop.history.clear()
    together = _concurrently(engine, [_greedy(p) for p in PROMPTS])
    assert [_text(c) for c in together] == alone
    assert all(c[-1].done and c[-1].eval_count == 24 for c in together)
    # Submitted at once, read one after another: no stream waits for its reader.
    engine._loop.history.clear()
    streams = _submitted_together(engine, [_greedy(p) for p in PROMPTS])
    assert [_text(list(s)) for s in streams] == alone
    # They really shared steps: some decode carried all four sequences.
    assert max(seqs for _, seqs in engine._loop.history) == len(PROMPTS)


def test_seeded_sampling_is_per_sequence(tiny_gguf: Path) -> None:
    """Each sequence draws from its own seeded chain: the same requests submitted together give
    the same texts run after run, and each seed its own. (Not compared with the alone runs: in the
    unified KV pool the last bits of the logits depend on where a sequence's cells sit, which a
    temperature-1 draw on the random model can feel.)"""

    def req(seed: int) -> CompletionRequest:
        return CompletionRequest(prompt="hello", temperature=1.0, seed=seed, num_predict=16)

    runs = []
    for _ in range(2):
        fresh = Engine(EngineConfig(model=tiny_gguf, n_ctx=256, n_parallel=4, n_batch=64))
        try:
            streams = _submitted_together(fresh, [req(s) for s in (1, 2, 3)])
            runs.append([_text(list(s)) for s in streams])
        finally:
            fresh.close()
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 3


def test_a_long_prompt_is_prefilled_in_chunks_beside_a_running_stream(engine: Engine) -> None:
    assert engine._loop is not None
    loop = engine._loop
    long_prompt = " ".join(f"w{i}" for i in range(60))  # a few hundred tokens > n_batch (64)
    assert len(engine.tokenize(long_prompt)) > 2 * loop.n_batch
    seen: list[tuple[int, int, int]] = []
    asked: list[int] = []

    class Recording(PrefillPacer):
        """Chunks of 8, and what the loop reports of each step."""

        def budget(self, outputs: int) -> int:
            asked.append(outputs)
            return 8

        def observe(self, decoding: int, outputs: int, prompt_tokens: int, seconds: float) -> None:
            assert seconds > 0
            seen.append((decoding, outputs, prompt_tokens))
            super().observe(decoding, outputs, prompt_tokens, seconds)

    real, loop.pacer = loop.pacer, Recording(loop.n_batch)
    try:
        running = engine.complete(_greedy("hello", n=200))
        next(running)  # the stream is decoding
        with loop._cv:  # its 199 tokens to go outlast the prompt's chunks, however slow we are
            loop.history.clear()
            seen.clear()
            (pending,) = _submitted_together(engine, [_greedy(long_prompt, n=4)])
        late = list(pending)
        assert late[-1].done
        steps = list(loop.history)
        running.close()
    finally:
        loop.pacer = real
    # While the stream decodes, a step takes the pacer's chunk beside its token.
    assert max(tokens for tokens, _ in steps) <= 8 + 1
    # Every step of the prefill also advanced the running stream (two sequences in it).
    prefill = [s for s in steps if s[0] > 2]
    assert len(prefill) >= 2 and all(seqs == 2 for _, seqs in prefill)
    # The pacer heard of every prompt token it evaluated, each step with the one stream decoding;
    # the prompt's last token, which wants logits, counted as a row like the stream's.
    evaluated = late[-1].prompt_eval_count - late[-1].prompt_cached
    assert evaluated > 2 * loop.n_batch
    assert sum(tokens for *_, tokens in seen) + 1 == evaluated
    assert {decoding for decoding, _, tokens in seen if tokens} == {1}
    assert [(d, o) for d, o, _ in seen].count((1, 2)) == 1  # the step that ended the prompt
    # Each chunk was sized for a step beside the one stream's row (2 rows: both decoding, after).
    assert asked.count(1) >= sum(1 for _, _, tokens in seen if tokens) and set(asked) == {1, 2}
    assert loop.pacer is real


def test_the_pacer_sizes_a_chunk_from_measured_step_times() -> None:
    assert GAP_RATIO == 1.75  # the figures below: a chunk may add 0.75 of a decode-only step
    pacer = PrefillPacer(n_batch=512)
    assert pacer.budget(3) == 16  # nothing measured yet
    pacer.observe(decoding=0, outputs=1, prompt_tokens=511, seconds=1.0)  # prefill alone
    assert pacer.budget(3) == 16  # nobody waited: not measured
    pacer.observe(decoding=3, outputs=3, prompt_tokens=0, seconds=0.040)
    pacer.observe(decoding=3, outputs=3, prompt_tokens=20, seconds=0.080)  # 2 ms a prompt token
    # A step with a chunk takes about 1.75 times a decode-only step: 15 tokens of 2 ms beside 40.
    assert pacer.budget(3) == 15
    assert pacer.budget(1) == 16  # no decode-only step of one row measured yet
    # A step is compared with a decode-only one of as many rows with logits: a prompt ending
    # beside one stream (2 rows) is not read as prompt tokens almost free beside 3 rows.
    pacer.observe(decoding=1, outputs=2, prompt_tokens=10, seconds=0.048)
    assert pacer.token_s == 0.002  # not measured: no decode-only step of 2 rows yet
    pacer.observe(decoding=2, outputs=2, prompt_tokens=0, seconds=0.028)
    pacer.observe(decoding=1, outputs=2, prompt_tokens=10, seconds=0.048)  # 2 ms a token again
    assert pacer.budget(2) == 10 and pacer.budget(3) == 15
    for _ in range(40):  # slower tokens (deep in a long prompt): smaller chunks
        pacer.observe(decoding=3, outputs=3, prompt_tokens=10, seconds=0.040 + 10 * 0.005)
    assert pacer.budget(3) == 6
    for _ in range(40):  # however slow, the prompt still moves
        pacer.observe(decoding=3, outputs=3, prompt_tokens=4, seconds=1.0)
    assert pacer.budget(3) == 4
    for _ in range(40):  # nearly free tokens (a GPU): the whole batch
        pacer.observe(decoding=3, outputs=3, prompt_tokens=512, seconds=0.041)
    assert pacer.budget(3) == 512


def test_a_chunk_at_most_doubles_from_one_measured_step_to_the_next() -> None:
    pacer = PrefillPacer(n_batch=512)
    pacer.observe(decoding=3, outputs=3, prompt_tokens=0, seconds=0.100)
    # A first chunk that looked nearly free (the decode-only step it is compared with was slow).
    pacer.observe(decoding=3, outputs=3, prompt_tokens=16, seconds=0.101)
    assert pacer.budget(3) == 32
    pacer.observe(decoding=3, outputs=3, prompt_tokens=32, seconds=0.102)
    assert pacer.budget(3) == 64


def test_cancelling_frees_the_sequence_within_a_step(engine: Engine) -> None:
    gone = threading.Event()
    stream = engine.complete(
        CompletionRequest(prompt="hello", num_predict=-1, temperature=1.0, seed=5),
        cancelled=gone.is_set,
    )
    next(stream)
    assert engine.slots[1] == 1
    gone.set()
    deadline = time.monotonic() + 5
    while engine.slots[1] and time.monotonic() < deadline:
        time.sleep(0.005)
    assert engine.slots == (4, 0)
    assert not any(c.done for c in stream)  # no final chunk for a cancelled request


def test_a_full_context_shifts_and_says_so(tiny_gguf: Path) -> None:
    small = Engine(EngineConfig(model=tiny_gguf, n_ctx=64))
    try:
        grammar = "root ::= [a-z ] root"  # never complete: the model cannot stop
        shifted = list(
            small.complete(
                CompletionRequest(prompt="hello", grammar=grammar, num_predict=100, seed=1)
            )
        )
        final = shifted[-1]
        assert final.done and final.done_reason == "length" and final.eval_count == 100
        assert final.context_shifted is True
        ended = list(
            small.complete(
                CompletionRequest(
                    prompt="hello", grammar=grammar, num_predict=100, seed=1, shift=False
                )
            )
        )[-1]
        assert ended.done_reason == "length" and not ended.context_shifted
        assert ended.prompt_eval_count + ended.eval_count <= 64 + 1
    finally:
        small.close()


def test_unlimited_num_predict_is_capped_at_the_context(tiny_gguf: Path) -> None:
    small = Engine(EngineConfig(model=tiny_gguf, n_ctx=64))
    try:
        grammar = "root ::= [a-z ] root"
        final = list(small.complete(CompletionRequest(prompt="hi", grammar=grammar, seed=2)))[-1]
        assert final.done_reason == "length" and final.eval_count == 64
    finally:
        small.close()


def test_logprobs_come_from_the_step_logits(engine: Engine) -> None:
    req = CompletionRequest(
        prompt="hello", temperature=0, num_predict=6, logprobs=True, top_logprobs=3
    )
    chunks = list(engine.complete(req))
    entries = [lp for c in chunks for lp in (c.logprobs or [])]
    assert len(entries) == 6
    text = "".join(c.content for c in chunks)
    spelled = Utf8Stream()
    assert "".join(spelled.feed(bytes(e.bytes)) for e in entries) + spelled.flush() == text
    for e in entries:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one, and the list is sorted.
        assert e.top_logprobs[0].logprob == pytest.approx(e.logprob)
        assert [t.logprob for t in e.top_logprobs] == sorted(
            (t.logprob for t in e.top_logprobs), reverse=True
        )
    # A real distribution: the probabilities of the top three sum to at most 1.
    import math

    assert all(sum(math.exp(t.logprob) for t in e.top_logprobs) <= 1 + 1e-5 for e in entries)
    plain = list(engine.complete(CompletionRequest(prompt="hello", temperature=0, num_predict=6)))
    assert all(c.logprobs is None for c in plain)
    assert "".join(c.content for c in plain) == text


GEMMA_PROMPTS = [
    "The three primary colors are",
    "A recipe for a simple tomato soup:",
    "In computer science, a hash table is",
    "Water boils at",
]
# Not "Once upon a time in a small village,": its first token is a near-tie of 0.059 (" a" vs
# " there"), which the batch shape flips. Measured here: that prompt's first logprobs are the
# same bit for bit evaluated alone as its last token over a cached prefix and evaluated with the
# three others in one 36-token batch, and differ from one 9-token batch of it alone: kernels,
# not a leak; but 0.059 is above the bar, so the set keeps to prompts that test the bar.


#: How far llama.cpp's kernels move a token's log probabilities when the batch around it changes
#: shape (one row or four, the sequence's cells alone or spread over the unified pool), measured
#: on identical tokens. One token's log probability moves by up to 0.10 nats on a 2-core AVX-512
#: Xeon and 0.31 on a 2-core AVX2 EPYC; the gap between a step's two best tokens, which is what
#: a greedy flip needs, by up to 0.68 on that EPYC (8 prompts x 32 tokens, repacked weights or
#: not), and CI's machine flipped a token whose gap was 0.81. The bar is set above that noise.
#: It is no leak detector: another prompt's tokens in view move the first token by 0.03 to 1.1
#: nats. The leak test is the exact one at the end: what the other sequences hold changes
#: nothing, bit for bit.
KERNEL_DRIFT = 1.5


def _first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def test_gemma_concurrent_outputs_leave_alone_ones_only_at_near_ties(gemma_gguf: Path) -> None:
    """llama.cpp's kernels depend on the batch size, so on a real model a concurrent greedy run
    may flip a near-tie; any other difference would mean sequences leak into each other. And
    with the batch shape fixed, what the other sequences hold changes nothing, bit for bit."""
    gemma = Engine(EngineConfig(model=gemma_gguf, n_ctx=512, n_parallel=4, n_threads=2))
    try:

        def req(prompt: str) -> CompletionRequest:
            return CompletionRequest(
                prompt=prompt, temperature=0, num_predict=24, logprobs=True, top_logprobs=2
            )

        def entries(chunks: list[CompletionChunk]) -> list[TokenLogprob]:
            return [lp for c in chunks for lp in (c.logprobs or [])]

        alone = [entries(list(gemma.complete(req(p)))) for p in GEMMA_PROMPTS]
        # Submitted together before any is read: one deterministic batch shape.
        streams = _submitted_together(gemma, [req(p) for p in GEMMA_PROMPTS])
        together = [entries(list(s)) for s in streams]
        for solo, mixed in zip(alone, together, strict=True):
            at = _first_difference([e.token for e in solo], [e.token for e in mixed])
            same = at if at is not None else min(len(solo), len(mixed))
            for a, b in zip(solo[:same], mixed[:same], strict=True):
                assert abs(a.logprob - b.logprob) < KERNEL_DRIFT, (a, b)
            if at is None:
                continue
            best, runner_up = solo[at].top_logprobs[0], solo[at].top_logprobs[1]
            # A flipped near-tie: the concurrent run took the alone run's second choice, and the
            # alone run's two were within the kernels' drift of each other.
            assert mixed[at].token == runner_up.token, (at, solo[at], mixed[at])
            assert best.logprob - runner_up.logprob < KERNEL_DRIFT, (
                f"diverged at token {at} where the alone run was sure "
                f"({best.logprob} vs {runner_up.logprob})"
            )
        # Other companions of the same token lengths: the first sequence's numbers are equal.
        others = [gemma.tokenize(p) for p in GEMMA_PROMPTS[1:]]
        swapped = [CompletionRequest(tokens=list(reversed(t)), **_lp_options()) for t in others]
        streams = _submitted_together(gemma, [req(GEMMA_PROMPTS[0]), *swapped])
        first_again = entries(list(streams[0]))
        for s in streams[1:]:
            list(s)
        # (Compared while every sequence of the first run was still decoding: after one ends,
        # the shapes differ. The companions cannot end: their grammar never completes.)
        n = min(len(e) for e in together)
        assert n > 0
        assert [(e.token, e.logprob) for e in first_again[:n]] == [
            (e.token, e.logprob) for e in together[0][:n]
        ]
    finally:
        gemma.close()


def _lp_options() -> dict[str, object]:
    return {
        "temperature": 0,
        "num_predict": 24,
        "logprobs": True,
        "top_logprobs": 2,
        "grammar": "root ::= [a-z ] root",
    }

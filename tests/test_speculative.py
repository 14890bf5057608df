"""Speculative decoding in the batched engine, in-process on tiny models: with a draft the output
is what it is without one (greedy and seeded), a draft of the model itself is accepted, another
draft is checked and mostly rejected, and sequences in one batch each keep their own draft."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocillm.runner.engine import Engine, EngineConfig, EngineError
from ocillm.runner.protocol import CompletionChunk, CompletionRequest

PROMPTS = ["hello", "<|im_start|>user\nwhy is the sky blue<|im_end|>\n", "a b c d e f"]


@pytest.fixture(scope="module")
def plain(tiny_gguf: Path) -> Iterator[Engine]:
    e = Engine(EngineConfig(model=tiny_gguf, n_ctx=256, n_parallel=3))
    yield e
    e.close()


@pytest.fixture(scope="module")
def self_drafted(tiny_gguf: Path) -> Iterator[Engine]:
    e = Engine(EngineConfig(model=tiny_gguf, n_ctx=256, n_parallel=3, draft=tiny_gguf))
    yield e
    e.close()


@pytest.fixture(scope="module")
def other_draft(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tiny_gguf  # registry-fixtures/tiny_gguf.py: other weights, the same vocabulary

    return tiny_gguf.write_tiny_gguf(tmp_path_factory.mktemp("draft") / "draft.gguf", seed=7)


def _run(engine: Engine, req: CompletionRequest) -> list[CompletionChunk]:
    return list(engine.complete(req))


def _greedy(prompt: str, **kw: object) -> CompletionRequest:
    return CompletionRequest(prompt=prompt, temperature=0, num_predict=32, **kw)  # type: ignore[arg-type]


def test_a_self_draft_gives_the_same_output_and_is_accepted(
    plain: Engine, self_drafted: Engine
) -> None:
    for prompt in PROMPTS:
        want = _run(plain, _greedy(prompt))
        got = _run(self_drafted, _greedy(prompt))
        assert "".join(c.content for c in got) == "".join(c.content for c in want)
        final = got[-1]
        assert final.eval_count == want[-1].eval_count
        assert final.draft_count and final.draft_count > 0
        assert final.draft_accepted == final.draft_count  # the same model agrees with itself
        assert plain._loop is not None and plain._loop.history
    # Fewer target decodes than tokens: each step checked several draft tokens at once.
    assert self_drafted._loop is not None
    self_drafted._loop.history.clear()
    _run(self_drafted, _greedy(PROMPTS[0], draft_num_predict=4))
    assert len(self_drafted._loop.history) < 32 // 2


def test_another_draft_changes_nothing_but_the_acceptance(
    plain: Engine, tiny_gguf: Path, other_draft: Path
) -> None:
    engine = Engine(EngineConfig(model=tiny_gguf, n_ctx=256, n_parallel=3, draft=other_draft))
    try:
        for prompt in PROMPTS:
            want = "".join(c.content for c in _run(plain, _greedy(prompt)))
            got = _run(engine, _greedy(prompt))
            assert "".join(c.content for c in got) == want
            assert got[-1].draft_count and got[-1].draft_accepted is not None
            assert got[-1].draft_accepted < got[-1].draft_count  # random weights disagree
        seeded = CompletionRequest(prompt="hello", temperature=1.0, seed=3, num_predict=24)
        want_seeded = "".join(c.content for c in _run(plain, seeded))
        assert "".join(c.content for c in _run(engine, seeded)) == want_seeded
    finally:
        engine.close()


def test_draft_num_predict_zero_turns_it_off(self_drafted: Engine) -> None:
    final = _run(self_drafted, _greedy("hello", draft_num_predict=0))[-1]
    assert final.draft_count == 0


def test_concurrent_sequences_each_keep_their_draft(plain: Engine, self_drafted: Engine) -> None:
    want = ["".join(c.content for c in _run(plain, _greedy(p))) for p in PROMPTS]
    got: list[str] = [""] * len(PROMPTS)
    barrier = threading.Barrier(len(PROMPTS))

    def run(i: int) -> None:
        barrier.wait()
        got[i] = "".join(c.content for c in _run(self_drafted, _greedy(PROMPTS[i])))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert got == want


def test_a_draft_with_another_vocabulary_is_refused(tiny_gguf: Path, tmp_path: Path) -> None:
    import tiny_gguf as fixture

    other = fixture.write_tiny_gguf(tmp_path / "other.gguf", seed=0, n_vocab=600)
    with pytest.raises(EngineError, match="vocabulary"):
        Engine(EngineConfig(model=tiny_gguf, n_ctx=128, draft=other))

"""A sampler chain with top-k (or greedy with penalties) runs on a shortlist of the vocabulary:
the shortlist must hold every token the chain could pick, and the chain must pick, with the same
seed, exactly the token it picks from the whole vocabulary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ocillm.runner.batch import sampling
from ocillm.runner.batch.shortlist import shortlist
from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.protocol import CompletionRequest

N_PREDICT = 32

# --- the shortlist ------------------------------------------------------------------------------


@pytest.mark.parametrize("n_vocab", [262_144, 151_936, 32_000, 512, 97])
@pytest.mark.parametrize("best", [1, 40, 104])
def test_the_shortlist_holds_the_best_logits_and_little_else(n_vocab: int, best: int) -> None:
    rng = np.random.default_rng(n_vocab + best)
    for trial in range(20):
        logits = (rng.standard_normal(n_vocab) * 4).astype(np.float32)
        if trial % 2:  # ties at the top, as quantised or capped logits give
            logits[rng.integers(0, n_vocab, size=min(best, n_vocab))] = logits.max()
        also = set(rng.integers(0, n_vocab, size=8).tolist())
        ids = shortlist(logits, min(best, n_vocab), also)
        assert np.all(np.diff(ids) > 0)  # ascending, each once: the vocabulary's order
        floor = np.sort(logits)[::-1][min(best, n_vocab) - 1]
        assert set(np.flatnonzero(logits >= floor)) <= set(ids.tolist())
        assert also <= set(ids.tolist())
        if 8 * (best + len(also)) < n_vocab:
            assert len(ids) < n_vocab // 4  # a shortlist, not the vocabulary


def test_a_shortlist_of_the_whole_vocabulary_is_every_token() -> None:
    logits = np.arange(10, dtype=np.float32)
    assert shortlist(logits, 10).tolist() == list(range(10))
    assert shortlist(logits, 3).tolist()[-3:] == [7, 8, 9]


# --- the chain on it ----------------------------------------------------------------------------

OPTIONS = {
    "ollama's defaults": {"temperature": 0.8, "top_k": 40, "top_p": 0.9},
    "hot, min-p": {"temperature": 1.5, "top_k": 100, "top_p": 1.0, "min_p": 0.02},
    "typical": {"temperature": 1.0, "top_k": 50, "typical_p": 0.7},
    "penalties": {
        "temperature": 1.2,
        "top_k": 40,
        "repeat_penalty": 1.4,
        "presence_penalty": 0.6,
        "frequency_penalty": 0.3,
        "repeat_last_n": 16,
    },
    "raising penalties": {"temperature": 1.0, "top_k": 20, "repeat_penalty": 0.7},
    "greedy, penalties": {"temperature": 0, "repeat_penalty": 1.5, "repeat_last_n": 32},
    "top-k 1": {"temperature": 0.9, "top_k": 1},
}


def tokens_from_empty_cache(
    engine: Engine, req: CompletionRequest
) -> tuple[list[tuple[bytes, float]], str]:
    """Each sampled token's bytes and log probability, and why it ended, from an empty cache:
    a prompt found there has its last row computed in another batch, which moves a logit by
    1e-4, enough to move a draw across the boundary between two tokens now and then."""
    loop = engine._loop
    assert loop is not None
    with loop._cv:
        for slot in loop._slots:
            loop._forget(slot)
    chunks = list(engine.complete(req))
    assert chunks[-1].done and chunks[-1].done_reason
    pieces = [(bytes(lp.bytes), lp.logprob) for c in chunks for lp in (c.logprobs or [])]
    return pieces, chunks[-1].done_reason


def _both_ways(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, req: CompletionRequest
) -> list[bytes]:
    shortlisted = 0
    real = sampling.sample_from

    def counted(*args: object) -> int:
        nonlocal shortlisted
        shortlisted += 1
        return real(*args)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(sampling, "sample_from", counted)
        fast, reason = tokens_from_empty_cache(engine, req)
    with monkeypatch.context() as m:
        m.setattr(sampling, "shortlist_size", lambda *_: 0)  # the whole vocabulary
        whole, whole_reason = tokens_from_empty_cache(engine, req)
    assert reason == whole_reason
    # Every token came from a shortlist (an end-of-generation token too, which is not output).
    assert shortlisted == len(fast) + (reason == "stop")
    assert len(fast) == N_PREDICT or reason == "stop"
    assert fast == whole  # the same tokens, the same numbers
    return [t for t, _ in fast]


def _ask(prompt: str, seed: int, options: dict[str, float]) -> CompletionRequest:
    return CompletionRequest.model_validate(
        {"prompt": prompt, "seed": seed, "num_predict": N_PREDICT, "logprobs": True} | options
    )


@pytest.fixture(scope="module")
def tiny(tiny_gguf: Path) -> Iterator[Engine]:
    engine = Engine(EngineConfig(model=tiny_gguf, n_ctx=256))  # one sequence: one layout
    yield engine
    engine.close()


@pytest.mark.parametrize("name", list(OPTIONS))
def test_the_shortlist_samples_the_chains_tokens_on_the_tiny_model(
    tiny: Engine, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    outputs = [
        _both_ways(tiny, monkeypatch, _ask(prompt, seed, OPTIONS[name]))
        for prompt in ("hello", "a b c d e f g h")
        for seed in (1, 2, 3)
    ]
    if OPTIONS[name]["temperature"] > 0.8 and OPTIONS[name].get("top_k") != 1:
        assert len({tuple(o) for o in outputs[:3]}) > 1  # the seed decides: really sampled


@pytest.mark.parametrize("name", ["ollama's defaults", "penalties", "greedy, penalties"])
def test_the_shortlist_samples_the_chains_tokens_on_gemma(
    gemma_gguf: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    engine = Engine(EngineConfig(model=gemma_gguf, n_ctx=256, n_threads=2))
    try:
        for seed in (7, 8):
            _both_ways(engine, monkeypatch, _ask("Once upon a time", seed, OPTIONS[name]))
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"temperature": 0.8}, 40),  # the defaults: top-k 40
        ({"temperature": 0.8, "top_k": 0}, 0),  # no top-k: the whole vocabulary
        ({"temperature": 0, "repeat_penalty": 1.1}, 1),
        ({"temperature": 0}, 0),  # the arg-max
        ({"temperature": 0.8, "grammar": 'root ::= "yes" | "no"'}, 40),  # it checks the pick
        ({"temperature": 0.8, "top_k": 300}, 0),  # 2 x 300 is more than the tiny vocabulary
        ({"temperature": 0.8, "top_k": 40, "repeat_penalty": 1.1, "repeat_last_n": -1}, 0),
    ],
)
def test_the_shortlist_is_taken_where_it_gives_the_chains_token(
    tiny: Engine, options: dict[str, object], size: int
) -> None:
    assert 2 * 300 > tiny.n_vocab >= 2 * (40 + 64)  # what the sizes below assume
    sampler = tiny._sampler(CompletionRequest(prompt="hi", **options))  # type: ignore[arg-type]
    try:
        assert sampler.shortlisted == size
    finally:
        sampler.close()

"""Greedy decoding with nothing that reshapes the logits takes the arg-max of the row directly;
it must give exactly the tokens llama.cpp's sampler chain gives, and be taken only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocillm.runner.batch import sampling
from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.protocol import CompletionRequest

PROMPTS = [
    "<|im_start|>user\nthe registry holds every model<|im_end|>\n<|im_start|>assistant\n",
    "hello",
    "a b c d e f g h",
]


def _tokens(engine: Engine, req: CompletionRequest) -> list[tuple[bytes, float]]:
    """Each sampled token's bytes and log probability."""
    chunks = list(engine.complete(req))
    assert chunks[-1].done
    return [(bytes(lp.bytes), lp.logprob) for c in chunks for lp in (c.logprobs or [])]


def _greedy(prompt: str, **options: object) -> CompletionRequest:
    fields = {"prompt": prompt, "temperature": 0, "num_predict": 24, "logprobs": True}
    return CompletionRequest.model_validate(fields | options)


def _both_ways(engine: Engine, monkeypatch: pytest.MonkeyPatch, prompt: str) -> None:
    fast = _tokens(engine, _greedy(prompt))
    with monkeypatch.context() as m:
        m.setattr(sampling, "_neutral", lambda *_: False)  # every sampler takes the chain
        assert not engine._sampler(_greedy(prompt)).argmax
        chain = _tokens(engine, _greedy(prompt))
    assert len(fast) == 24
    # The same tokens; the numbers agree to the kernels' rounding (the second run finds the
    # prompt in the cache, so its rows are computed in other batches).
    assert [t for t, _ in fast] == [t for t, _ in chain]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(fast, chain, strict=True))


@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_arg_max_gives_the_chains_tokens_on_the_tiny_model(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch, prompt: str
) -> None:
    engine = Engine(EngineConfig(model=tiny_gguf, n_ctx=256, n_parallel=2))
    try:
        _both_ways(engine, monkeypatch, prompt)
    finally:
        engine.close()


def test_the_arg_max_gives_the_chains_tokens_on_gemma(
    gemma_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(EngineConfig(model=gemma_gguf, n_ctx=256, n_threads=2))
    try:
        _both_ways(engine, monkeypatch, "The capital of France is")
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("options", "argmax"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0, "repeat_penalty": 1.1, "repeat_last_n": 0}, True),  # window off
        ({"temperature": 0, "repeat_penalty": 1.1}, False),
        ({"temperature": 0, "presence_penalty": 0.5}, False),
        ({"temperature": 0, "frequency_penalty": 0.5}, False),
        ({"temperature": 0, "grammar": 'root ::= "yes" | "no"'}, True),  # it checks the pick
        ({"temperature": 0.7}, False),
    ],
)
def test_the_arg_max_is_taken_only_where_nothing_reshapes_the_logits(
    tiny_gguf: Path, options: dict[str, object], argmax: bool
) -> None:
    engine = Engine(EngineConfig(model=tiny_gguf, n_ctx=128))
    try:
        sampler = engine._sampler(CompletionRequest(prompt="hi", **options))  # type: ignore[arg-type]
        try:
            assert sampler.argmax is argmax
        finally:
            sampler.close()
    finally:
        engine.close()

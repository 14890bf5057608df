"""The engine inside a runner, in-process on the tiny model: prefix reuse, cancellation, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocillm.runner.engine import Engine, EngineConfig, EngineError
from ocillm.runner.protocol import CompletionRequest, EmbeddingRequest

PROMPT = "<|im_start|>user\nhello world, the model of the registry<|im_end|>\n"


@pytest.fixture(scope="module")
def engine(tiny_gguf: Path) -> Engine:
    return Engine(EngineConfig(model=tiny_gguf, n_ctx=256))


def test_a_shared_prefix_is_not_evaluated_again(engine: Engine) -> None:
    first = CompletionRequest(prompt=PROMPT, temperature=0, num_predict=4)
    list(engine.complete(first))
    follow_up = PROMPT + "<|im_start|>assistant\nhi<|im_end|>\n"
    assert engine._loop is not None
    engine._loop.history.clear()
    chunks = list(
        engine.complete(CompletionRequest(prompt=follow_up, temperature=0, num_predict=4))
    )
    final = chunks[-1]
    assert final.prompt_eval_count == len(engine.tokenize(follow_up))
    assert final.prompt_cached == len(engine.tokenize(PROMPT))
    # The first step evaluated only the new tokens; each later one, one sampled token.
    steps = [tokens for tokens, _ in engine._loop.history]
    assert steps[0] == final.prompt_eval_count - final.prompt_cached
    assert steps[1:] == [1] * (len(steps) - 1)


def test_cancellation_stops_within_a_token(engine: Engine) -> None:
    asked = 0

    def cancelled() -> bool:
        nonlocal asked
        asked += 1
        return asked >= 3

    chunks = list(engine.complete(CompletionRequest(prompt="hello", num_predict=200), cancelled))
    assert asked == 3
    assert not any(c.done for c in chunks)
    assert engine.slots == (1, 0)  # the slot is free again


def test_num_predict_limits_the_tokens(engine: Engine) -> None:
    chunks = list(engine.complete(CompletionRequest(prompt="hello", num_predict=5, seed=1)))
    final = chunks[-1]
    assert final.done and final.done_reason == "length" and final.eval_count == 5
    assert final.prompt_eval_duration > 0 and final.eval_duration > 0


def test_zero_num_predict_generates_nothing(engine: Engine) -> None:
    (final,) = engine.complete(CompletionRequest(prompt="hello", num_predict=0))
    assert final.done and final.content == "" and final.eval_count == 0


def test_a_prompt_longer_than_the_context_is_refused_before_streaming(engine: Engine) -> None:
    with pytest.raises(EngineError, match="exceeds the context length"):
        engine.complete(CompletionRequest(prompt="hello " * 400))


def test_a_bad_grammar_is_refused(engine: Engine) -> None:
    with pytest.raises(EngineError, match="invalid grammar"):
        engine.complete(CompletionRequest(prompt="x", grammar="root ::= ("))


def test_a_grammar_constrains_the_output(engine: Engine) -> None:
    grammar = 'root ::= "yes" | "no"'
    chunks = list(engine.complete(CompletionRequest(prompt="hello", grammar=grammar, seed=3)))
    assert "".join(c.content for c in chunks) in {"yes", "no"}
    assert chunks[-1].done_reason == "stop"


def test_a_request_takes_the_sequence_holding_its_prefix(tiny_gguf: Path) -> None:
    two = Engine(EngineConfig(model=tiny_gguf, n_ctx=128, n_parallel=2))
    try:
        assert two.slots == (2, 0)
        other = "<|im_start|>user\nsomething else entirely<|im_end|>\n"
        list(two.complete(CompletionRequest(prompt=PROMPT, num_predict=2)))
        list(two.complete(CompletionRequest(prompt=other, num_predict=2)))
        assert two._loop is not None
        held = [list(s.tokens) for s in two._loop._slots]
        prompt = two.tokenize(PROMPT)
        assert sum(h[: len(prompt)] == prompt for h in held) == 1  # one sequence each
        final = list(two.complete(CompletionRequest(prompt=PROMPT + "more", num_predict=2)))[-1]
        assert final.prompt_cached >= len(prompt) - 1
    finally:
        two.close()


def test_a_completion_runner_refuses_embeddings(engine: Engine) -> None:
    with pytest.raises(EngineError, match="not loaded for embeddings"):
        engine.embed(EmbeddingRequest(input=["x"]))


def test_an_embedding_longer_than_a_default_batch_is_not_cut(tmp_path: Path) -> None:
    import tiny_gguf  # registry-fixtures/tiny_gguf.py

    model = tiny_gguf.write_tiny_gguf(tmp_path / "embed.gguf", embedding=True, context_length=2048)
    engine = Engine(EngineConfig(model=model, n_ctx=1024, embedding=True))
    try:
        text = " ".join(f"w{i}" for i in range(250))
        tokens = len(engine.tokenize(text))
        assert 512 < tokens <= 1024
        out = engine.embed(EmbeddingRequest(input=[text], truncate=False))
        assert out.prompt_eval_count == tokens
    finally:
        engine.close()


def test_a_generation_that_fills_the_context_ends_with_length(tiny_gguf: Path) -> None:
    # Unbounded generations on the random model: some stop, some run into the full context,
    # where llama-cpp-python decodes one token too many (seed 13 does, on this model). Each
    # must end done, never raise "llama_decode returned 1".
    engine = Engine(EngineConfig(model=tiny_gguf, n_ctx=256))
    reasons = []
    for seed in range(16):
        chunks = list(engine.complete(CompletionRequest(prompt="pre<fim>post", seed=seed)))
        assert chunks[-1].done
        reasons.append(chunks[-1].done_reason)
    assert "length" in reasons and set(reasons) <= {"stop", "length"}

"""A grammar checks the chain's pick rather than running over the whole vocabulary first.

Greedy, that must give exactly the tokens of the grammar-first chain (the grammar over every
token, then the chain), the way the runner sampled before: the best token, where the grammar
allows it, is the best allowed one. Tested both ways on the tiny model and on Gemma, with grammars
that refuse the pick now and then, so both the check and the fallback run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_sampling_shortlist import tokens_from_empty_cache

from ocillm.runner.batch import sampling
from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.protocol import CompletionRequest
from ocillm.server.formats import grammar_for

N_PREDICT = 40
JSON = grammar_for("json")
#: Words from the tiny model's vocabulary: it never picks them itself, so every pick is refused.
WORDS = 'root ::= ("hello" | " world" | " the" | " model"){1,6} "."'


def _both_ways(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, req: CompletionRequest
) -> tuple[int, int]:
    """Checks the two give the same tokens; returns (picks allowed, picks refused)."""
    verdicts: list[bool] = []
    real = sampling.allows

    def counted(*args: Any) -> bool:
        verdicts.append(real(*args))
        return verdicts[-1]

    with monkeypatch.context() as m:
        m.setattr(sampling, "allows", counted)
        checked, reason = tokens_from_empty_cache(engine, req)
    with monkeypatch.context() as m:
        m.setattr(sampling.Sampler, "sample", sampling.Sampler.sample_grammar_first)
        first, first_reason = tokens_from_empty_cache(engine, req)
    assert (checked, reason) == (first, first_reason)
    assert len(checked) == N_PREDICT or reason == "stop"
    return sum(verdicts), len(verdicts) - sum(verdicts)


def _ask(prompt: str, grammar: str | None, **options: Any) -> CompletionRequest:
    return CompletionRequest(
        prompt=prompt,
        grammar=grammar,
        temperature=0,
        num_predict=N_PREDICT,
        logprobs=True,
        **options,
    )


@pytest.fixture(scope="module")
def tiny(tiny_gguf: Path) -> Iterator[Engine]:
    engine = Engine(EngineConfig(model=tiny_gguf, n_ctx=256))
    yield engine
    engine.close()


@pytest.mark.parametrize("grammar", [JSON, WORDS], ids=["json", "words"])
@pytest.mark.parametrize(
    "options",
    [{}, {"repeat_penalty": 1.5, "repeat_last_n": 16}],
    ids=["greedy", "greedy with penalties"],
)
def test_greedy_tokens_are_the_grammar_first_chains_on_the_tiny_model(
    tiny: Engine, monkeypatch: pytest.MonkeyPatch, grammar: str, options: dict[str, Any]
) -> None:
    allowed = refused = 0
    for prompt in ("hello", "a b c d e f g h", "<|im_start|>user\nanswer<|im_end|>\n"):
        a, r = _both_ways(tiny, monkeypatch, _ask(prompt, grammar, **options))
        allowed, refused = allowed + a, refused + r
    assert refused > 0, (allowed, refused)  # the fallback ran
    if grammar == JSON:
        assert allowed > 0, (allowed, refused)  # and the check alone did too


def test_greedy_json_on_gemma_is_the_grammar_first_chains_and_mostly_checks_one_token(
    gemma_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(EngineConfig(model=gemma_gguf, n_ctx=512, n_threads=2))
    try:
        prompt = (
            "<start_of_turn>user\nDescribe a cat as a JSON object.<end_of_turn>\n"
            "<start_of_turn>model\n"
        )
        allowed, refused = _both_ways(engine, monkeypatch, _ask(prompt, JSON))
    finally:
        engine.close()
    # What makes it fast: the model's pick mostly fits, and then one token is checked.
    assert allowed >= 3 * refused, (allowed, refused)


def test_sampled_answers_keep_to_the_grammar_and_follow_the_seed(tiny: Engine) -> None:
    def answer(seed: int) -> str:
        req = CompletionRequest(
            prompt="hello", grammar=WORDS, temperature=1.0, top_k=40, seed=seed, num_predict=60
        )
        chunks = list(tiny.complete(req))
        assert chunks[-1].done_reason == "stop"  # the grammar ended it with its "."
        return "".join(c.content for c in chunks)

    texts = [answer(seed) for seed in (1, 2, 3)]
    for text in texts:
        rest = text.removesuffix(".")
        for word in ("hello", " world", " the", " model"):
            rest = rest.replace(word, "")
        assert text.endswith(".") and rest == "", text
    assert len(set(texts)) > 1  # really sampled
    assert answer(2) == texts[1]

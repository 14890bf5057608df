"""Pictures a model reads all at once (Gemma 3), on a tiny random-weight ``gemma3`` model and
projector (``registry-fixtures/tiny_gemma3.py``).

Such a picture's embeddings attend to each other both ways, so the runner decodes the whole
picture in one batch with causal attention off, never in the prefill pacer's chunks. The
reference is llama.cpp's own ``mtmd_helper_eval_chunks``: the runner's greedy tokens must be the
reference's, token for token, alone, after a cached first turn, beside other sequences and
beside a stream that would otherwise have the picture cut into chunks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
import tiny_gemma3
from llama_cpp import mtmd_cpp
from server_fixtures import ServerProcess, build_model
from vision_support import (
    Reference,
    beside_a_stream,
    forget_cache,
    greedy_ask,
    output_of,
    png,
    run_request,
    run_together,
)

from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.errors import EngineError
from ocillm.runner.protocol import CompletionRequest

PICTURE = png(tiny_gemma3.IMAGE_SIZE, tiny_gemma3.IMAGE_SIZE, seed=1)
OTHER = png(tiny_gemma3.IMAGE_SIZE, tiny_gemma3.IMAGE_SIZE, seed=2)
WIDE = png(100, 50, seed=3)  # resized to the square: the same 16 embeddings
N_PREDICT = 12
#: The reference evaluates the prompt in batches of its own making, so sums run in another order:
#: the runner may leave its tokens only at a step whose two best tokens are closer than this. A
#: picture read causally leaves them at the first step (see the first test).
NEAR_TIE = 0.01


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("gemma3")
    model = tiny_gemma3.write_tiny_gemma3_text(home / "model.gguf")
    projector = tiny_gemma3.write_tiny_gemma3_mmproj(home / "mmproj.gguf")
    return model, projector


@pytest.fixture(scope="module")
def engine(gemma3: tuple[Path, Path]) -> Iterator[Engine]:
    model, projector = gemma3
    e = Engine(EngineConfig(model=model, projector=projector, n_ctx=256, n_parallel=3, n_batch=64))
    yield e
    e.close()


@pytest.fixture(scope="module")
def reference(gemma3: tuple[Path, Path]) -> Iterator[Reference]:
    ref = Reference(*gemma3, N_PREDICT)
    assert mtmd_cpp.mtmd_decode_use_non_causal(ref.ctx, None)
    yield ref
    ref.close()


def _ask(prompt: str, images: list[bytes]) -> CompletionRequest:
    return greedy_ask(prompt, images, N_PREDICT)


def test_reading_the_picture_causally_would_change_the_answer(
    engine: Engine, reference: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes the rest of this file mean something: were the picture decoded with causal
    attention, the tokens would leave the reference's at a step that is no near-tie."""
    prompt = "look [img-0] what is it"
    expected = reference.generate(prompt, [PICTURE])[0]
    forget_cache(engine)
    monkeypatch.setattr(mtmd_cpp, "mtmd_decode_use_non_causal", lambda ctx, chunk: False)
    causal = run_request(engine, _ask(prompt, [PICTURE]))
    monkeypatch.undo()
    forget_cache(engine)
    assert causal.done.prompt_eval_count == reference.generate(prompt, [PICTURE])[1]
    assert not causal.is_(expected, NEAR_TIE), (causal.pieces, expected)
    assert run_request(engine, _ask(prompt, [PICTURE])).is_(expected, NEAR_TIE)


@pytest.mark.parametrize(
    ("prompt", "images"),
    [
        ("look [img-0] what is it", [PICTURE]),
        ("look [img-0] what is it", [OTHER]),
        ("a wide one [img-0] and then the words after it", [WIDE]),
        ("[img-0] first, then [img-1] second, and a question", [PICTURE, OTHER]),
    ],
    ids=["square", "other", "wide", "two"],
)
def test_greedy_tokens_are_llama_cpps_own(
    engine: Engine, reference: Reference, prompt: str, images: list[bytes]
) -> None:
    expected, n_tokens, positions = reference.generate(prompt, images)
    assert positions == n_tokens  # one position an embedding, unlike M-RoPE
    out = run_request(engine, _ask(prompt, images))
    assert out.done.done and out.done.prompt_eval_count == n_tokens
    assert len(expected) >= 4
    assert out.is_(expected, NEAR_TIE), (out.pieces, expected)


def test_two_pictures_give_two_answers(engine: Engine) -> None:
    prompt = "look [img-0] what is it"
    square = run_request(engine, _ask(prompt, [PICTURE]))
    other = run_request(engine, _ask(prompt, [OTHER]))
    assert square.pieces != other.pieces


def test_the_next_turn_finds_the_picture_cached(engine: Engine, reference: Reference) -> None:
    first = "a chat [img-0] about a picture"
    run_request(engine, _ask(first, [PICTURE]))
    second = first + " and a second question about it"
    out = run_request(engine, _ask(second, [PICTURE]))
    assert out.done.prompt_cached > tiny_gemma3.IMAGE_TOKENS  # the text, the picture, the text
    assert out.is_(reference.generate(second, [PICTURE])[0], NEAR_TIE)


def test_pictures_beside_other_sequences_give_llama_cpps_tokens(
    engine: Engine, reference: Reference
) -> None:
    requests = [
        ("one [img-0] two", [PICTURE]),
        ("the registry holds every model and every layer", []),
        ("[img-0] and [img-1] together", [WIDE, OTHER]),
    ]
    expected = [reference.generate(p, i)[0] for p, i in requests]
    outputs = run_together(engine, [_ask(p, i) for p, i in requests])
    for out, theirs in zip(outputs, expected, strict=True):
        assert out.is_(theirs, NEAR_TIE), (out, theirs)


def test_a_picture_beside_a_stream_goes_in_one_decode(engine: Engine, reference: Reference) -> None:
    """Beside a decoding stream (one that runs its 120 tokens) the pacer cuts prompts into
    chunks of five rows; a picture read all at once is not cut: its 16 rows go in one decode of
    their own, and both outputs are what each gives alone."""
    prompt = "look [img-0] what is it"
    expected = reference.generate(prompt, [PICTURE])[0]
    stream = CompletionRequest(prompt="hello world", temperature=0, seed=0, num_predict=120)
    forget_cache(engine)
    alone = "".join(c.content for c in engine.complete(stream))
    run = beside_a_stream(engine, _ask(prompt, [PICTURE]), stream, rows=5)
    pictures = [tokens for tokens, seqs in run.steps if seqs == 1 and tokens > 1]
    assert pictures == [tiny_gemma3.IMAGE_TOKENS], run.steps
    assert (5 + 1, 2) in run.steps  # text went in chunks, beside the stream's token
    out = output_of(run.chunks)
    assert out.done.prompt_eval_count == reference.generate(prompt, [PICTURE])[1]
    assert out.is_(expected, NEAR_TIE), (out.pieces, expected)
    assert run.stream == alone


def test_a_picture_larger_than_num_batch_is_a_clear_error(gemma3: tuple[Path, Path]) -> None:
    """The picture cannot be split, so a batch narrower than it is the request's error, said
    with the setting to change, and the engine goes on serving."""
    model, projector = gemma3
    small = Engine(EngineConfig(model=model, projector=projector, n_ctx=256, n_batch=8))
    try:
        with pytest.raises(EngineError, match="set num_batch to at least 16") as info:
            list(small.complete(_ask("look [img-0] what is it", [PICTURE])))
        assert info.value.status == 400
        text = list(small.complete(CompletionRequest(prompt="hello", num_predict=3)))
        assert text[-1].done and text[-1].eval_count == 3
    finally:
        small.close()


def test_ollama_chat_reads_a_gemma3_picture(
    tmp_path_factory: pytest.TempPathFactory, gemma3: tuple[Path, Path]
) -> None:
    """Through ``ocillm serve``: an image built with the projector answers pictures, and a
    num_batch narrower than a picture is a 400 naming the setting, not a crash."""
    model, projector = gemma3
    home = tmp_path_factory.mktemp("serve-gemma3")
    build_model(home / "models", model, "gemma-seer", f"FROM {projector}\n")
    proc = ServerProcess(home).start()
    try:
        client = ollama.Client(host=proc.url)
        options = {"temperature": 0, "seed": 0, "num_predict": N_PREDICT}

        def ask(picture: bytes, **extra: int) -> ollama.ChatResponse:
            msgs = [{"role": "user", "content": "describe it", "images": [picture]}]
            return client.chat("gemma-seer", msgs, options={**options, **extra})

        square, other = ask(PICTURE), ask(OTHER)
        assert (square.prompt_eval_count or 0) > tiny_gemma3.IMAGE_TOKENS
        assert square.message.content != other.message.content
        with pytest.raises(ollama.ResponseError) as info:
            ask(PICTURE, num_batch=8)
        assert info.value.status_code == 400 and "num_batch" in info.value.error
    finally:
        assert proc.stop() == 0, proc.log()[-3000:]

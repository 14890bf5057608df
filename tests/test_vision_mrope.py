"""Pictures with M-RoPE positions (Qwen2-VL, Qwen2.5-VL) on a tiny random-weight ``qwen2vl`` model
and ``qwen2vl_merger`` projector (``registry-fixtures/tiny_qwen2vl.py``).

Such a picture's embeddings each have a (time, row, column) position and the picture takes only
``max(rows, columns)`` positions of the sequence. The reference is llama.cpp's own
``mtmd_helper_eval_chunks``, which places a prompt's pictures and text that way: the runner's
greedy tokens must be the reference's, token for token, with pictures in the middle of the
prompt, two of them, of two shapes, after a cached first turn and beside other sequences."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
import tiny_qwen2vl
from llama_cpp import mtmd_cpp
from server_fixtures import ServerProcess, build_model
from vision_support import (
    Reference,
    beside_a_stream,
    greedy_ask,
    output_of,
    png,
    run_request,
    run_together,
)

from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.protocol import CompletionRequest

SQUARE = png(tiny_qwen2vl.IMAGE_SIZE, tiny_qwen2vl.IMAGE_SIZE, seed=1)  # 4 x 4 merged patches
OTHER = png(tiny_qwen2vl.IMAGE_SIZE, tiny_qwen2vl.IMAGE_SIZE, seed=2)
WIDE = png(100, 50, seed=3)  # 6 x 3 merged patches: 18 embeddings at 6 positions
N_PREDICT = 12
#: The reference evaluates the prompt in batches of its own making, so sums run in another order
#: and a logit moves by about 1e-3: the runner may leave it only at a step whose two best tokens
#: are closer than this (seen: 0.001 nats apart). A misplaced picture moves them by far more.
NEAR_TIE = 0.01


@pytest.fixture(scope="module")
def qwen2vl(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("qwen2vl")
    # A small rope base: a picture's rows and columns then move the logits by about 1e-2 where
    # they are misplaced by one or two (under Qwen2-VL's 1e6, by 1e-3: within the noise).
    model = tiny_qwen2vl.write_tiny_qwen2vl_text(home / "model.gguf", rope_freq_base=10.0)
    projector = tiny_qwen2vl.write_tiny_qwen2vl_mmproj(home / "mmproj.gguf")
    return model, projector


@pytest.fixture(scope="module")
def engine(qwen2vl: tuple[Path, Path]) -> Iterator[Engine]:
    model, projector = qwen2vl
    e = Engine(EngineConfig(model=model, projector=projector, n_ctx=256, n_parallel=3, n_batch=64))
    yield e
    e.close()


def _ask(prompt: str, images: list[bytes]) -> CompletionRequest:
    return greedy_ask(prompt, images, N_PREDICT)


@pytest.fixture(scope="module")
def reference(qwen2vl: tuple[Path, Path]) -> Iterator[Reference]:
    ref = Reference(*qwen2vl, N_PREDICT)
    assert mtmd_cpp.mtmd_decode_use_mrope(ref.ctx)
    yield ref
    ref.close()


def test_the_fixture_takes_fewer_positions_than_tokens(reference: Reference) -> None:
    """What makes the rest of this file mean something: the picture takes 4 positions for its 16
    embeddings, so text after it sits 12 positions before its index."""
    prompt = "look [img-0] what is it"
    _, n_tokens, positions = reference.generate(prompt, [SQUARE])
    gap = tiny_qwen2vl.IMAGE_TOKENS - tiny_qwen2vl.IMAGE_POSITIONS
    assert tiny_qwen2vl.image_grid(64, 64) == (4, 4) and gap == 12
    assert n_tokens - positions == gap


@pytest.mark.parametrize(
    ("prompt", "images"),
    [
        ("look [img-0] what is it", [SQUARE]),
        ("look [img-0] what is it", [OTHER]),
        ("a wide one [img-0] and then the words after it", [WIDE]),
        ("[img-0] first, then [img-1] second, and a question", [SQUARE, WIDE]),
    ],
    ids=["square", "other", "wide", "two"],
)
def test_greedy_tokens_are_llama_cpps_own(
    engine: Engine, reference: Reference, prompt: str, images: list[bytes]
) -> None:
    expected, n_tokens, _ = reference.generate(prompt, images)
    out = run_request(engine, _ask(prompt, images))
    assert out.done.done and out.done.prompt_eval_count == n_tokens
    assert len(expected) >= 4
    assert out.is_(expected, NEAR_TIE), (out.pieces, expected)


def test_two_pictures_give_two_answers(engine: Engine) -> None:
    prompt = "look [img-0] what is it"
    assert (
        run_request(engine, _ask(prompt, [SQUARE])).pieces
        != run_request(engine, _ask(prompt, [OTHER])).pieces
    )


def test_the_next_turn_finds_the_picture_cached_at_its_positions(
    engine: Engine, reference: Reference
) -> None:
    first = "a chat [img-0] about a picture"
    run_request(engine, _ask(first, [WIDE]))
    second = first + " and a second question about it"
    out = run_request(engine, _ask(second, [WIDE]))
    assert out.done.prompt_cached > 18  # the text, the picture and the text after it
    assert out.is_(reference.generate(second, [WIDE])[0], NEAR_TIE)


def test_pictures_beside_other_sequences_give_llama_cpps_tokens(
    engine: Engine, reference: Reference
) -> None:
    requests = [
        ("one [img-0] two", [SQUARE]),
        ("the registry holds every model and every layer", []),
        ("[img-0] and [img-1] together", [WIDE, OTHER]),
    ]
    expected = [reference.generate(p, i)[0] for p, i in requests]
    outputs = run_together(engine, [_ask(p, i) for p, i in requests])
    for out, theirs in zip(outputs, expected, strict=True):
        assert out.is_(theirs, NEAR_TIE), (out, theirs)


def test_a_picture_split_across_steps_keeps_its_positions(
    engine: Engine, reference: Reference
) -> None:
    """Beside a decoding stream the picture goes in the pacer's chunks of five rows, which cut
    its 6-wide rows of patches anywhere: each chunk must carry its own rows' positions."""
    prompt = "a wide one [img-0] and then the words after it"
    expected = reference.generate(prompt, [WIDE])[0]
    whole = run_request(engine, _ask(prompt, [WIDE]))  # no stream waits: decoded in one piece
    stream = CompletionRequest(prompt="the registry holds", temperature=0, seed=0, num_predict=120)
    run = beside_a_stream(engine, _ask(prompt, [WIDE]), stream, rows=5)
    out = output_of(run.chunks)
    rows = [tokens for tokens, seqs in run.steps if seqs == 1 and tokens > 1]
    assert rows == [5, 5, 5, 3], run.steps  # WIDE's 18 embeddings
    assert out.is_(expected, NEAR_TIE), (out.pieces, expected)
    # The same logits as in one piece, but for the sums' order (seen: 5e-6; 1e-2 where a
    # chunk took its first rows' positions).
    assert out.pieces == whole.pieces
    assert max(abs(a - b) for a, b in zip(out.margins, whole.margins, strict=True)) < 1e-3


def test_ollama_chat_reads_an_m_rope_picture(
    tmp_path_factory: pytest.TempPathFactory, qwen2vl: tuple[Path, Path]
) -> None:
    """Through ``ocillm serve``: an image built with the projector answers, where it was a 501."""
    model, projector = qwen2vl
    home = tmp_path_factory.mktemp("serve-qwen2vl")
    build_model(home / "models", model, "qwen-seer", f"FROM {projector}\n")
    proc = ServerProcess(home).start()
    try:
        client = ollama.Client(host=proc.url)
        options = {"temperature": 0, "seed": 0, "num_predict": N_PREDICT}

        def ask(picture: bytes) -> ollama.ChatResponse:
            msgs = [{"role": "user", "content": "describe it", "images": [picture]}]
            return client.chat("qwen-seer", msgs, options=options)

        square, other = ask(SQUARE), ask(OTHER)
        assert (square.prompt_eval_count or 0) > tiny_qwen2vl.IMAGE_TOKENS
        assert square.message.content != other.message.content
    finally:
        assert proc.stop() == 0, proc.log()[-3000:]


def test_a_runner_that_read_an_m_rope_picture_exits_cleanly(qwen2vl: tuple[Path, Path]) -> None:
    """The picture's positions go in through a batch field that llama.cpp frees with the batch:
    the runner's own pointer must be back there by then (it once freed ours, and aborted)."""
    model, projector = qwen2vl
    script = (
        "import sys; from pathlib import Path\n"
        "from test_vision_mrope import SQUARE, _ask\nfrom vision_support import run_request\n"
        "from ocillm.runner.engine import Engine, EngineConfig\n"
        "e = Engine(EngineConfig(model=Path(sys.argv[1]), projector=Path(sys.argv[2]), n_ctx=256, n_batch=8))\n"
        "assert run_request(e, _ask('look [img-0] what is it', [SQUARE])).done.done\n"
        "e.close()\n"
    )
    here = Path(__file__).parent
    env_path = f"{here}:{here.parent / 'registry-fixtures'}"
    done = subprocess.run(
        [sys.executable, "-c", script, str(model), str(projector)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": env_path},
    )
    assert done.returncode == 0, done.stderr[-2000:]

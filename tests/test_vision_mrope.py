"""Pictures with M-RoPE positions (Qwen2-VL, Qwen2.5-VL) on a tiny random-weight ``qwen2vl`` model
and ``qwen2vl_merger`` projector (``registry-fixtures/tiny_qwen2vl.py``).

Such a picture's embeddings each have a (time, row, column) position and the picture takes only
``max(rows, columns)`` positions of the sequence. The reference is llama.cpp's own
``mtmd_helper_eval_chunks``, which places a prompt's pictures and text that way: the runner's
greedy tokens must be the reference's, token for token, with pictures in the middle of the
prompt, two of them, of two shapes, after a cached first turn and beside other sequences."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ollama
import pytest
import tiny_qwen2vl
from server_fixtures import ServerProcess, build_model
from vision_support import b64, beside_a_stream, png

from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.protocol import CompletionChunk, CompletionRequest
from ocillm.runner.vision import IMAGE_TAG

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
    return CompletionRequest(
        prompt=prompt,
        images=[b64(i) for i in images],
        temperature=0,
        seed=0,
        num_predict=N_PREDICT,
        logprobs=True,
        top_logprobs=2,
    )


@dataclass
class Output:
    pieces: list[bytes]  # the sampled tokens' bytes
    margins: list[float]  # at each step, how far the best token led the second
    done: CompletionChunk

    def is_(self, expected: list[bytes]) -> bool:
        """The same tokens as ``expected``, or the same up to a near-tie it resolved otherwise."""
        for k, (ours, theirs) in enumerate(zip(self.pieces, expected, strict=False)):
            if ours != theirs:
                return self.margins[k] < NEAR_TIE
        return len(self.pieces) == len(expected)


def _run(engine: Engine, req: CompletionRequest) -> Output:
    return _run_chunks(list(engine.complete(req)))


def _run_chunks(chunks: list[CompletionChunk]) -> Output:
    steps = [lp for c in chunks for lp in c.logprobs or []]
    margins = [s.top_logprobs[0].logprob - s.top_logprobs[1].logprob for s in steps]
    return Output([bytes(s.bytes) for s in steps], margins, chunks[-1])


class Reference:
    """The prompt evaluated by llama.cpp's ``mtmd_helper_eval_chunks`` in a context of its own,
    then greedy tokens by arg-max of the logits, each at the position after the last."""

    def __init__(self, model: Path, projector: Path) -> None:
        import llama_cpp
        from llama_cpp import mtmd_cpp

        self._lib, self._mtmd = llama_cpp, mtmd_cpp
        self.llama = llama_cpp.Llama(
            model_path=str(model), n_ctx=256, n_batch=64, n_threads=1, verbose=False
        )
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.warmup = False
        params.print_timings = False
        self.ctx = mtmd_cpp.mtmd_init_from_file(
            str(projector).encode(), self.llama._model.model, params
        )
        assert self.ctx and mtmd_cpp.mtmd_decode_use_mrope(self.ctx)

    def close(self) -> None:
        self._mtmd.mtmd_free(self.ctx)
        self.llama.close()

    def generate(self, prompt: str, images: list[bytes]) -> tuple[list[bytes], int, int]:
        """(tokens' bytes, tokens evaluated, positions they took)."""
        lib, m = self._lib, self._mtmd
        lctx = self.llama._ctx.ctx
        lib.llama_memory_clear(lib.llama_get_memory(lctx), True)
        order = [int(n) for n in IMAGE_TAG.findall(prompt)]
        text = IMAGE_TAG.sub(m.mtmd_default_marker().decode(), prompt).encode()
        buffers = [(ctypes.c_uint8 * len(images[n])).from_buffer_copy(images[n]) for n in order]
        bitmaps = [m.mtmd_helper_bitmap_init_from_buf(self.ctx, b, len(b), False) for b in buffers]
        chunks = m.mtmd_input_chunks_init()
        try:
            spec = m.mtmd_input_text(text, len(text), True, True)
            arr = (m.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
            assert m.mtmd_tokenize(self.ctx, chunks, ctypes.byref(spec), arr, len(bitmaps)) == 0
            n_tokens = int(m.mtmd_helper_get_n_tokens(chunks))
            n_past = ctypes.c_int32(0)
            status = m.mtmd_helper_eval_chunks(
                self.ctx, lctx, chunks, 0, 0, 64, True, ctypes.byref(n_past)
            )
            assert status == 0
        finally:
            m.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                m.mtmd_bitmap_free(bitmap)
        positions = pos = n_past.value
        vocab, n_vocab = self.llama._model.vocab, self.llama.n_vocab()
        batch = lib.llama_batch_init(1, 0, 1)
        pieces: list[bytes] = []
        try:
            while len(pieces) < N_PREDICT:
                logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(lctx, -1), (n_vocab,))
                token = int(np.argmax(logits))
                if lib.llama_vocab_is_eog(vocab, token):
                    break
                buf = ctypes.create_string_buffer(64)
                n = lib.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
                pieces.append(buf.raw[:n])
                batch.n_tokens = 1
                batch.token[0], batch.pos[0], batch.n_seq_id[0] = token, pos, 1
                batch.seq_id[0][0], batch.logits[0] = 0, True
                assert lib.llama_decode(lctx, batch) == 0
                pos += 1
        finally:
            lib.llama_batch_free(batch)
        return pieces, n_tokens, positions


@pytest.fixture(scope="module")
def reference(qwen2vl: tuple[Path, Path]) -> Iterator[Reference]:
    ref = Reference(*qwen2vl)
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
    out = _run(engine, _ask(prompt, images))
    assert out.done.done and out.done.prompt_eval_count == n_tokens
    assert len(expected) >= 4
    assert out.is_(expected), (out.pieces, expected)


def test_two_pictures_give_two_answers(engine: Engine) -> None:
    prompt = "look [img-0] what is it"
    assert _run(engine, _ask(prompt, [SQUARE])).pieces != _run(engine, _ask(prompt, [OTHER])).pieces


def test_the_next_turn_finds_the_picture_cached_at_its_positions(
    engine: Engine, reference: Reference
) -> None:
    first = "a chat [img-0] about a picture"
    _run(engine, _ask(first, [WIDE]))
    second = first + " and a second question about it"
    out = _run(engine, _ask(second, [WIDE]))
    assert out.done.prompt_cached > 18  # the text, the picture and the text after it
    assert out.is_(reference.generate(second, [WIDE])[0])


def test_pictures_beside_other_sequences_give_llama_cpps_tokens(
    engine: Engine, reference: Reference
) -> None:
    requests = [
        ("one [img-0] two", [SQUARE]),
        ("the registry holds every model and every layer", []),
        ("[img-0] and [img-1] together", [WIDE, OTHER]),
    ]
    expected = [reference.generate(p, i)[0] for p, i in requests]
    results: list[Output | None] = [None for _ in requests]
    start = threading.Barrier(len(requests))

    def run(i: int) -> None:
        start.wait()
        results[i] = _run(engine, _ask(*requests[i]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for out, theirs in zip(results, expected, strict=True):
        assert out is not None and out.is_(theirs), (out, theirs)


def test_a_picture_split_across_steps_keeps_its_positions(
    engine: Engine, reference: Reference
) -> None:
    """Beside a decoding stream the picture goes in the pacer's chunks of five rows, which cut
    its 6-wide rows of patches anywhere: each chunk must carry its own rows' positions."""
    prompt = "a wide one [img-0] and then the words after it"
    expected = reference.generate(prompt, [WIDE])[0]
    whole = _run(engine, _ask(prompt, [WIDE]))  # no stream waits: decoded in one piece
    stream = CompletionRequest(prompt="the registry holds", temperature=0, seed=0, num_predict=120)
    run = beside_a_stream(engine, _ask(prompt, [WIDE]), stream, rows=5)
    out = _run_chunks(run.chunks)
    rows = [tokens for tokens, seqs in run.steps if seqs == 1 and tokens > 1]
    assert rows == [5, 5, 5, 3], run.steps  # WIDE's 18 embeddings
    assert out.is_(expected), (out.pieces, expected)
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
        "from test_vision_mrope import SQUARE, _ask, _run\n"
        "from ocillm.runner.engine import Engine, EngineConfig\n"
        "e = Engine(EngineConfig(model=Path(sys.argv[1]), projector=Path(sys.argv[2]), n_ctx=256, n_batch=8))\n"
        "assert _run(e, _ask('look [img-0] what is it', [SQUARE])).done.done\n"
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

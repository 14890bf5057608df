"""Pictures for the vision tests: small PNGs of seeded random pixels, written without an imaging
library (the format is a signature, a header chunk, zlib-compressed rows and an end chunk), and
the same pixels as lossless WebP (written by Pillow); a request run beside a decoding stream
with the prefill pacer's chunk fixed; and llama.cpp's own way of reading a prompt with pictures
(``mtmd_helper_eval_chunks``), the reference the runner's greedy tokens are held to."""

from __future__ import annotations

import base64
import ctypes
import io
import random
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocillm.runner.batch.pacing import PrefillPacer
from ocillm.runner.engine import Engine
from ocillm.runner.protocol import CompletionChunk, CompletionRequest
from ocillm.runner.vision import IMAGE_TAG


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _rows(width: int, height: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [bytes(rng.randrange(256) for _ in range(width * 3)) for _ in range(height)]


def png(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    """An RGB PNG of random pixels: each seed a different picture."""
    rows = b"".join(b"\x00" + row for row in _rows(width, height, seed))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def webp(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    """The picture ``png`` makes from the same arguments, pixel for pixel, as lossless WebP."""
    from PIL import Image

    pixels = b"".join(_rows(width, height, seed))
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, "WEBP", lossless=True)
    return out.getvalue()


def b64(data: bytes) -> str:
    """A picture as a request carries it."""
    return base64.b64encode(data).decode()


def greedy_ask(prompt: str, images: list[bytes], n_predict: int) -> CompletionRequest:
    """A greedy request for ``prompt`` with its pictures, asking for the two top logprobs an
    :class:`Output` judges a difference by."""
    return CompletionRequest(
        prompt=prompt,
        images=[b64(i) for i in images],
        temperature=0,
        seed=0,
        num_predict=n_predict,
        logprobs=True,
        top_logprobs=2,
    )


def forget_cache(engine: Engine) -> None:
    """No sequence holds a prefix to reuse: the next picture is decoded anew."""
    loop = engine._loop
    assert loop is not None
    with loop._cv:
        for slot in loop._slots:
            loop._forget(slot)


class _FixedChunks(PrefillPacer):
    """The same prompt rows every step beside the streams, whatever is measured."""

    def __init__(self, n_batch: int, rows: int) -> None:
        super().__init__(n_batch)
        self.rows = rows

    def budget(self, outputs: int) -> int:
        return self.rows


@dataclass
class BesideAStream:
    chunks: list[CompletionChunk]  # the request's
    steps: list[tuple[int, int]]  # the loop's history meanwhile: (rows, sequences) per decode
    stream: str  # the stream's whole text


def beside_a_stream(
    engine: Engine, req: CompletionRequest, stream: CompletionRequest, *, rows: int
) -> BesideAStream:
    """``req`` submitted while ``stream`` decodes, every step taking ``rows`` of its prompt,
    with nothing cached beforehand (its pictures are decoded anew). ``stream`` must generate
    long enough to outlast the prompt."""
    loop = engine._loop
    assert loop is not None
    forget_cache(engine)
    real, loop.pacer = loop.pacer, _FixedChunks(loop.n_batch, rows)
    try:
        running = engine.complete(stream)
        first = next(running)  # the stream is decoding
        with loop._cv:  # submitted before the loop's next step
            loop.history.clear()
            pending = engine.complete(req)
        chunks = list(pending)
        steps = list(loop.history)
        text = first.content + "".join(c.content for c in running)
    finally:
        loop.pacer = real
    return BesideAStream(chunks, steps, text)


@dataclass
class Output:
    """A greedy run's tokens, with the logprobs that judge a difference from the reference."""

    pieces: list[bytes]  # the sampled tokens' bytes
    margins: list[float]  # at each step, how far the best token led the second
    done: CompletionChunk

    def is_(self, expected: list[bytes], near_tie: float) -> bool:
        """The same tokens as ``expected``, or the same up to a step whose two best tokens were
        closer than ``near_tie`` nats (and which it resolved otherwise)."""
        for k, (ours, theirs) in enumerate(zip(self.pieces, expected, strict=False)):
            if ours != theirs:
                return self.margins[k] < near_tie
        return len(self.pieces) == len(expected)


def output_of(chunks: list[CompletionChunk]) -> Output:
    """The :class:`Output` of a request's chunks; it must have asked for two top logprobs."""
    steps = [lp for c in chunks for lp in c.logprobs or []]
    margins = [s.top_logprobs[0].logprob - s.top_logprobs[1].logprob for s in steps]
    return Output([bytes(s.bytes) for s in steps], margins, chunks[-1])


def run_request(engine: Engine, req: CompletionRequest) -> Output:
    return output_of(list(engine.complete(req)))


def run_together(engine: Engine, requests: list[CompletionRequest]) -> list[Output]:
    """The requests submitted at once from threads of their own, so they share the loop's
    steps; their outputs in order."""
    results: list[Output | None] = [None for _ in requests]
    start = threading.Barrier(len(requests))

    def run(i: int) -> None:
        start.wait()
        results[i] = run_request(engine, requests[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r is not None for r in results), "a request did not finish"
    return [r for r in results if r is not None]


class Reference:
    """A prompt with ``[img-N]`` tags evaluated by llama.cpp's ``mtmd_helper_eval_chunks`` in a
    context of its own (``n_batch`` 64), then greedy tokens by arg-max of the logits, each at
    the position after the last."""

    def __init__(self, model: Path, projector: Path, n_predict: int) -> None:
        import llama_cpp
        from llama_cpp import mtmd_cpp

        self._lib, self._mtmd, self.n_predict = llama_cpp, mtmd_cpp, n_predict
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
        assert self.ctx

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
            while len(pieces) < self.n_predict:
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

"""Pictures for the vision tests: small PNGs of seeded random pixels, written without an imaging
library (the format is a signature, a header chunk, zlib-compressed rows and an end chunk), and
the same pixels as lossless WebP (written by Pillow); and a request run beside a decoding stream
with the prefill pacer's chunk fixed."""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib
from dataclasses import dataclass

from ocillm.runner.batch.pacing import PrefillPacer
from ocillm.runner.engine import Engine
from ocillm.runner.protocol import CompletionChunk, CompletionRequest


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
    with loop._cv:
        for slot in loop._slots:
            loop._forget(slot)
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

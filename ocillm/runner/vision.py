"""Images in a prompt: llama.cpp's ``mtmd`` library turns each into embeddings the model reads.

A prompt names its images with Ollama's ``[img-N]`` tags (N indexes the request's ``images``).
:meth:`Vision.prompt` splits it there, lets ``mtmd`` tokenize the text and encode each image with
the projector (an mmproj GGUF), and returns the prompt as the decode loop takes it: text token ids,
with each image position a negative id derived from the picture's digest (so the same picture in
the next turn of a chat is found in the KV cache like text), plus the embeddings to decode there.

Most projectors give a picture one position per embedding. M-RoPE ones (Qwen2-VL, Qwen2.5-VL)
give each embedding a (time, row, column) position and the whole picture ``max(rows, columns)``
positions of the sequence, so the text after it sits at fewer positions than tokens: an
:class:`ImageRun` says how many (``n_pos``) and carries the embeddings' positions.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import dataclasses
import hashlib
import io
import os
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocillm.runner.errors import EngineError

#: Ollama's image tag in a rendered prompt.
IMAGE_TAG = re.compile(r"\[img-(\d+)\]")
#: Encoded images kept for the next request (a chat sends its pictures again every turn).
CACHED_IMAGES = 16

#: The picture formats read (by stb_image, inside mtmd), by their first bytes. Anything else is
#: refused before mtmd sees it: it would try the bytes as audio, then as video through ffmpeg.
PICTURE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
}
#: Kinds decoded here, not by llama.cpp's stb_image (which reads no WebP; Ollama reads it).
DECODED_HERE = ("WebP",)

_NO_FFMPEG = os.devnull.encode()  # a "directory" that holds no ffprobe on any system

_TEXT_CHUNK = 0  # MTMD_INPUT_CHUNK_TYPE_TEXT
_IMAGE_CHUNK = 1  # MTMD_INPUT_CHUNK_TYPE_IMAGE


@dataclass(frozen=True)
class ImageRun:
    """One image's place in a prompt: ``n_tokens`` tokens from index ``start``, and their inputs.
    It advances the sequence's position by ``n_pos`` (``n_tokens``, except under M-RoPE)."""

    start: int
    n_tokens: int
    embeddings: Any  # a ctypes float array of n_tokens x n_embd
    non_causal: bool  # the model attends to the image all at once (Gemma 3): one batch
    n_pos: int = 0  # 0: n_tokens
    # M-RoPE only: llama_pos[4 * n_tokens], section-major (all times, all rows, all columns, the
    # spare section), already placed where the prompt puts the picture.
    positions: Any = None

    @property
    def end(self) -> int:
        return self.start + self.n_tokens

    @property
    def position_gap(self) -> int:
        """How many fewer positions than tokens the picture takes."""
        return self.n_tokens - self.n_pos if self.n_pos else 0


@dataclass(frozen=True)
class VisionPrompt:
    tokens: list[int]  # text token ids; an image position holds a negative placeholder
    images: tuple[ImageRun, ...]


@dataclass(frozen=True)
class _Encoded:
    embeddings: Any
    n_tokens: int


def placeholders(digest: bytes, n_tokens: int) -> list[int]:
    """The ids standing for an image's positions: negative (no vocabulary id is), one per
    position, the same for the same picture."""
    base = int.from_bytes(digest[:7], "big")
    return [-1 - base - i for i in range(n_tokens)]


def decode_images(data: list[str]) -> list[bytes]:
    """The request's base64 images as bytes; a bad one is the client's error."""
    out = []
    for i, text in enumerate(data):
        try:
            out.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise EngineError(f"image {i} is not valid base64") from None
    return out


class Vision:
    """The projector of one model, used by request threads one at a time (``mtmd`` is not
    thread-safe); the decode loop only reads the embeddings it returns."""

    def __init__(
        self, projector: Path, llama: Any, *, n_threads: int | None, use_gpu: bool
    ) -> None:
        import llama_cpp
        from llama_cpp import mtmd_cpp

        from ocillm.runner.llama_loader import tag_mtmd_logs

        tag_mtmd_logs()
        self._mtmd = mtmd_cpp
        # A marker no user text contains: a literal "<__media__>" in a prompt stays text.
        self._marker = f"<__ocillm_image_{secrets.token_hex(8)}__>".encode()
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.warmup = False
        if n_threads:
            params.n_threads = n_threads
        params.media_marker = self._marker
        self._ctx = mtmd_cpp.mtmd_init_from_file(
            str(projector).encode(), llama._model.model, params
        )
        if not self._ctx:
            raise EngineError(f"cannot load the vision projector {projector.name}", status=500)
        self.n_embd = int(llama_cpp.llama_model_n_embd_inp(llama._model.model))
        self.mrope = bool(mtmd_cpp.mtmd_decode_use_mrope(self._ctx))
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, _Encoded] = OrderedDict()

    def close(self) -> None:
        with self._lock:
            if self._ctx:
                self._mtmd.mtmd_free(self._ctx)
                self._ctx = None

    def prompt(self, text: str, images: list[bytes], *, add_special: bool) -> VisionPrompt:
        """Tokenize ``text`` with its ``[img-N]`` tags replaced by ``images[N]``."""
        order = [int(n) for n in IMAGE_TAG.findall(text)]
        for n in order:
            if n >= len(images):
                raise EngineError(f"the prompt names [img-{n}], but {len(images)} images were sent")
        unused = sorted(set(range(len(images))) - set(order))
        if unused:
            raise EngineError(
                f"image {unused[0]} is not placed in the prompt by an [img-{unused[0]}] tag"
            )
        marked = IMAGE_TAG.sub(self._marker.decode(), text).encode()
        with self._lock:
            return self._tokenize(marked, [images[n] for n in order], order, add_special)

    def _tokenize(
        self, text: bytes, pictures: list[bytes], order: list[int], add_special: bool
    ) -> VisionPrompt:
        m = self._mtmd
        bitmaps = [self._bitmap(data, n) for data, n in zip(pictures, order, strict=True)]
        chunks = m.mtmd_input_chunks_init()
        try:
            arr = (m.mtmd_bitmap_p_ctypes * max(len(bitmaps), 1))(*bitmaps)
            spec = m.mtmd_input_text(text, len(text), add_special, True)
            status = m.mtmd_tokenize(self._ctx, chunks, ctypes.byref(spec), arr, len(bitmaps))
            if status != 0:
                raise EngineError(f"the prompt and its images could not be tokenized ({status})")
            tokens: list[int] = []
            runs: list[ImageRun] = []
            gap = 0  # positions the pictures so far took fewer than their tokens
            digests = iter(hashlib.sha256(p).digest() for p in pictures)
            for i in range(m.mtmd_input_chunks_size(chunks)):
                chunk = m.mtmd_input_chunks_get(chunks, i)
                kind = m.mtmd_input_chunk_get_type(chunk)
                if kind == _TEXT_CHUNK:
                    count = ctypes.c_size_t()
                    ids = m.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                    tokens.extend(int(ids[j]) for j in range(count.value))
                elif kind == _IMAGE_CHUNK:
                    digest = next(digests)
                    encoded = self._encode(chunk, digest)
                    non_causal = bool(m.mtmd_decode_use_non_causal(self._ctx, chunk))
                    run = ImageRun(len(tokens), encoded.n_tokens, encoded.embeddings, non_causal)
                    if self.mrope:
                        run = self._placed(run, chunk, len(tokens) - gap)
                        gap += run.position_gap
                    runs.append(run)
                    tokens.extend(placeholders(digest, encoded.n_tokens))
                else:
                    raise EngineError("this projector takes audio, which ocillm does not send")
            return VisionPrompt(tokens=tokens, images=tuple(runs))
        finally:
            m.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                m.mtmd_bitmap_free(bitmap)

    def _placed(self, run: ImageRun, chunk: Any, pos_0: int) -> ImageRun:
        """``run`` with its M-RoPE positions, the picture's first at sequence position ``pos_0``
        (what the tokens and pictures before it take; the same in every turn of a chat)."""
        m = self._mtmd
        image = m.mtmd_input_chunk_get_tokens_image(chunk)
        n = run.n_tokens
        each = (m.mtmd_decoder_pos * n)()
        m.mtmd_helper_image_get_decoder_pos(image, pos_0, each)
        positions = (ctypes.c_int32 * (4 * n))()
        for i, pos in enumerate(each):  # the order llama.cpp's own helper writes them in
            positions[i] = pos.t
            positions[n + i] = pos.y
            positions[2 * n + i] = pos.x
            positions[3 * n + i] = pos.z
        n_pos = int(m.mtmd_input_chunk_get_n_pos(chunk))
        return dataclasses.replace(run, n_pos=n_pos, positions=positions)

    def _bitmap(self, data: bytes, n: int) -> Any:
        m = self._mtmd
        bitmap = None
        if is_webp(data):
            bitmap = self._bitmap_from_webp(data, n)
        elif any(data.startswith(magic) for magic in PICTURE_MAGIC):
            buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            # A picture stb_image cannot read falls through to video: give it no ffmpeg to run.
            opt = m.mtmd_helper_init_opt_default()
            opt.video_params.ffmpeg_bin_dir = _NO_FFMPEG
            bitmap = m.mtmd_helper_bitmap_init_from_buf(self._ctx, buf, len(data), False, opt)
        if not bitmap:
            kinds = ", ".join(sorted({*PICTURE_MAGIC.values(), *DECODED_HERE}))
            raise EngineError(f"image {n} could not be decoded: it is not a picture ({kinds})")
        return bitmap

    def _bitmap_from_webp(self, data: bytes, n: int) -> Any:
        """A WebP picture's first frame as RGB pixels, decoded by Pillow (its libwebp)."""
        rgb, width, height = decode_webp(data, n)
        pixels = (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)
        return self._mtmd.mtmd_bitmap_init(width, height, pixels)

    def _encode(self, chunk: Any, digest: bytes) -> _Encoded:
        m = self._mtmd
        n_tokens = int(m.mtmd_input_chunk_get_n_tokens(chunk))
        cached = self._cache.get(digest)
        if cached is not None and cached.n_tokens == n_tokens:
            self._cache.move_to_end(digest)
            return cached
        if m.mtmd_encode_chunk(self._ctx, chunk) != 0:
            raise EngineError("the projector could not encode the image", status=500)
        size = n_tokens * self.n_embd
        out = (ctypes.c_float * size)()
        ctypes.memmove(out, m.mtmd_get_output_embd(self._ctx), size * ctypes.sizeof(ctypes.c_float))
        encoded = _Encoded(out, n_tokens)
        self._cache[digest] = encoded
        while len(self._cache) > CACHED_IMAGES:
            self._cache.popitem(last=False)
        return encoded


class ImageBatch:
    """Decodes an image's embeddings into a sequence of the context (the decode loop's job)."""

    def __init__(self, ctx: Any, n_batch: int, n_embd: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._ctx = ctx
        self.n_batch = n_batch
        self._n_embd = n_embd
        self._batch = llama_cpp.llama_batch_init(n_batch, n_embd, 1)
        # The address llama_batch_init gave ``pos``, put back for llama_batch_free (an int: the
        # pointer object ctypes hands out views the field itself and would follow the swap).
        self._pos_type = type(self._batch.pos)
        self._own_pos = ctypes.addressof(self._batch.pos.contents)
        # M-RoPE: an embedding batch carries 4 positions a row (llama_batch_init makes room for 1).
        self._mrope_pos = (ctypes.c_int32 * (4 * n_batch))()

    def decode(self, run: ImageRun, pos: int, seq_id: int, first: int, count: int) -> int:
        """llama_decode's status (0 is success) for rows ``first`` to ``first + count`` of the
        run placed at positions ``pos`` onwards (a picture with M-RoPE positions brings its
        own)."""
        lib, batch, width = self._lib, self._batch, self._n_embd
        row = width * ctypes.sizeof(ctypes.c_float)
        base = ctypes.addressof(run.embeddings)
        if run.non_causal:
            lib.llama_set_causal_attn(self._ctx, False)
        if run.positions is not None:
            batch.pos = ctypes.cast(self._mrope_pos, self._pos_type)
        try:
            for offset in range(first, first + count, self.n_batch):
                n = min(self.n_batch, first + count - offset)
                ctypes.memmove(batch.embd, base + offset * row, n * row)
                for i in range(n):
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = seq_id
                    batch.logits[i] = False
                if run.positions is None:
                    for i in range(n):
                        batch.pos[i] = pos + offset + i
                else:
                    self._slice_positions(run, offset, n)
                batch.n_tokens = n
                status = int(lib.llama_decode(self._ctx, batch))
                if status != 0:
                    return status
            return 0
        finally:
            batch.pos = ctypes.cast(self._own_pos, self._pos_type)
            if run.non_causal:
                lib.llama_set_causal_attn(self._ctx, True)

    def _slice_positions(self, run: ImageRun, first: int, n: int) -> None:
        """Rows ``first`` to ``first + n`` of the run's positions, section-major as a batch of n
        rows wants them."""
        size = ctypes.sizeof(ctypes.c_int32)
        src, dst = ctypes.addressof(run.positions), ctypes.addressof(self._mrope_pos)
        for section in range(4):
            ctypes.memmove(
                dst + section * n * size, src + (section * run.n_tokens + first) * size, n * size
            )

    def close(self) -> None:
        self._lib.llama_batch_free(self._batch)


def is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def decode_webp(data: bytes, n: int) -> tuple[bytes, int, int]:
    """RGB bytes, width and height of a WebP picture (its first frame, alpha dropped, as
    stb_image gives llama.cpp the other kinds). Pillow refuses pictures of more than about
    179 million pixels (its decompression-bomb limit) before decoding them."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as picture:
            rgb = picture.convert("RGB")
            return rgb.tobytes(), rgb.width, rgb.height
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise EngineError(f"image {n} could not be decoded: WebP: {err}") from err

"""Write a tiny random-weight Qwen2-VL-style vision model: an M-RoPE text GGUF and its projector.

llama.cpp places the embeddings of such a model's images with M-RoPE: every position has four
components (temporal, height, width, unused), and an image of ``nx`` x ``ny`` merged patches
takes ``max(nx, ny)`` positions of the sequence for its ``nx * ny`` embeddings. That is what
these fixtures exercise; the weights are random (seeded), so what the model says is noise.

* :func:`write_tiny_qwen2vl_text`: llama.cpp architecture ``qwen2vl`` (the Qwen2 transformer
  with q/k/v biases and ``qwen2vl.rope.dimension_sections``), with ``tiny_gguf.py``'s SPM
  vocabulary and ChatML template, plus the two control tokens ``<|vision_start|>`` and
  ``<|vision_end|>`` appended (``mtmd`` writes them around every image).
* :func:`write_tiny_qwen2vl_mmproj`: a ``qwen2vl_merger`` projector (``clip.projector_type``):
  a ViT of a few blocks over 8x8 patches with two patch convolutions (Qwen2-VL's temporal pair),
  2-D M-RoPE attention, and the merger, an MLP over each 2x2 group of patches into the language
  model's width.

Image sizes are dynamic: ``mtmd`` resizes a picture to multiples of 16 px (one merged patch),
keeping its aspect ratio, between 8 and 4096 merged patches (llama.cpp's limits for Qwen2-VL,
not keys of the file). A 64x64 picture stays 64x64: 4x4 merged patches, :data:`IMAGE_TOKENS`
(16) embeddings at :data:`IMAGE_POSITIONS` (4) positions. :func:`image_grid` gives the grid of
another size.

The output is deterministic: the same arguments always give the same bytes (same sha256).

Usable as a library and as a script (writes both files)::

    python registry-fixtures/tiny_qwen2vl.py MODEL.gguf MMPROJ.gguf [--seed N]
"""

from __future__ import annotations

import argparse
import math
import sys
from functools import partial
from pathlib import Path

import gguf
import numpy as np
from tiny_gguf import (
    DEFAULT_CHAT_TEMPLATE,
    FILE_TYPES,
    DecoderHParams,
    add_decoder_header,
    add_decoder_tensors,
    add_spm_tokenizer,
    build_vocab,
    gguf_writer,
)
from tiny_mmproj import add_clip_header, add_vit_blocks, vit_weights

#: Control tokens appended to ``tiny_gguf``'s vocabulary; ``mtmd`` puts them around an image.
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>")

PATCH_SIZE = 8
#: Patches merged into one embedding along each side (llama.cpp's Qwen2-VL graph fixes it at 2).
SPATIAL_MERGE = 2
#: Pixels along a side of one merged patch; ``mtmd`` resizes pictures to multiples of it.
MERGED_PATCH = PATCH_SIZE * SPATIAL_MERGE
#: llama.cpp's token limits for Qwen2-VL projectors (``set_limit_image_tokens(8, 4096)``).
MIN_IMAGE_TOKENS, MAX_IMAGE_TOKENS = 8, 4096

#: The side of the test picture the constants below describe (and ``clip.vision.image_size``).
IMAGE_SIZE = 64
#: Embeddings a square IMAGE_SIZE picture becomes: one per merged patch.
IMAGE_TOKENS = (IMAGE_SIZE // MERGED_PATCH) ** 2
#: Sequence positions that picture takes with M-RoPE: the longer side, in merged patches.
IMAGE_POSITIONS = IMAGE_SIZE // MERGED_PATCH


def image_grid(width: int, height: int) -> tuple[int, int]:
    """The merged-patch grid ``(nx, ny)`` a ``width`` x ``height`` picture becomes in ``mtmd``.

    Mirrors llama.cpp's ``calc_size_preserved_ratio`` (round each side to a multiple of
    :data:`MERGED_PATCH`, then scale up or down into the token limits); the image takes
    ``nx * ny`` embeddings and ``max(nx, ny)`` positions.
    """
    if width <= 0 or height <= 0:
        raise ValueError("an image has a positive width and height")
    f = MERGED_PATCH
    min_pixels = MIN_IMAGE_TOKENS * f * f
    max_pixels = MAX_IMAGE_TOKENS * f * f
    w = max(f, math.floor(width / f + 0.5) * f)
    h = max(f, math.floor(height / f + 0.5) * f)
    if w * h > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        w = max(f, math.floor(width / beta / f) * f)
        h = max(f, math.floor(height / beta / f) * f)
    elif w * h < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        w = math.ceil(width * beta / f) * f
        h = math.ceil(height * beta / f) * f
    return w // f, h // f


def default_rope_sections(head_dim: int) -> tuple[int, int, int, int]:
    """M-RoPE sections (rotary pairs per temporal, height, width, unused component) in Qwen2-VL's
    16:24:24 proportion; they add up to ``head_dim // 2``."""
    if head_dim % 2:
        raise ValueError("the head dimension must be even")
    pairs = head_dim // 2
    temporal = pairs // 4
    height = (pairs - temporal) // 2
    return temporal, height, pairs - temporal - height, 0


def write_tiny_qwen2vl_text(
    path: Path | str,
    *,
    seed: int = 0,
    chat_template: str | None = DEFAULT_CHAT_TEMPLATE,
    context_length: int = 256,
    file_type: str = "F32",
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_vocab: int = 512,
    rope_sections: tuple[int, int, int, int] | None = None,
    rope_freq_base: float = 1e6,
    name: str = "tiny-qwen2vl",
) -> Path:
    """Write the tiny ``qwen2vl`` text model to ``path`` and return the path.

    The vocabulary is ``tiny_gguf.build_vocab(n_vocab)`` (so text tokenizes as with
    ``tiny_gguf.py``'s model) with :data:`VISION_TOKENS` appended at ids ``n_vocab`` and
    ``n_vocab + 1``. ``rope_sections``: the four M-RoPE sections, adding up to half the head
    dimension (:func:`default_rope_sections` by default). ``rope_freq_base``: Qwen2-VL's 1e6 turns
    the height and width pairs of a 16-wide head by thousandths of a radian a position; a small
    one makes a picture's row and column positions move the logits. ``file_type``: ``"F32"`` or
    ``"F16"`` for the 2-D weight matrices (norms and biases stay F32).
    """
    if file_type not in FILE_TYPES:
        raise ValueError(f"file_type must be one of {sorted(FILE_TYPES)}, not {file_type!r}")
    vocab_size = n_vocab + len(VISION_TOKENS)
    hp = DecoderHParams(
        context_length,
        vocab_size,
        n_embd,
        n_layer,
        n_head,
        n_head_kv,
        n_ff,
        rope_freq_base=rope_freq_base,
        rms_eps=1e-6,
    )
    sections = rope_sections or default_rope_sections(hp.head_dim)
    if len(sections) != 4 or sum(sections) != hp.head_dim // 2:
        raise ValueError(f"rope_sections must be 4 numbers adding up to {hp.head_dim // 2}")
    ftype, dtype = FILE_TYPES[file_type]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    tokens, scores, types = build_vocab(n_vocab, VISION_TOKENS)
    rng = np.random.default_rng(seed)

    with gguf_writer(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN2VL]) as writer:
        add_decoder_header(writer, hp, name=name, file_type=ftype, rope_sections=sections)
        add_spm_tokenizer(writer, tokens, scores, types, chat_template)
        add_decoder_tensors(writer, rng, hp, dtype=dtype, qkv_bias=True)
    return path


def write_tiny_qwen2vl_mmproj(
    path: Path | str,
    *,
    seed: int = 0,
    text_embd: int = 64,
    n_embd: int = 32,
    n_ff: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
) -> Path:
    """Write the ``qwen2vl_merger`` projector to ``path`` and return it.

    ``text_embd`` must be the language model's embedding width. ``n_embd // n_head`` (the head
    dimension) must be a multiple of 4: the vision M-RoPE splits it into four sections.
    ``n_ff`` must differ from ``n_embd`` (llama.cpp takes equal widths for an old conversion
    with swapped up/down matrices). The merger's hidden width is ``4 * n_embd``, as Qwen2-VL's.
    """
    if n_embd % n_head or (n_embd // n_head) % 4:
        raise ValueError("n_embd must be n_head times a multiple of 4")
    if n_ff == n_embd:
        raise ValueError("n_ff must differ from n_embd")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    merged = n_embd * SPATIAL_MERGE * SPATIAL_MERGE

    weights = partial(vit_weights, rng)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    with gguf_writer(path, "clip") as writer:
        add_clip_header(
            writer,
            name="tiny-qwen2vl-mmproj",
            projector_type="qwen2vl_merger",
            use_gelu=False,  # the ViT's MLP uses quick GELU, as Qwen2-VL's does
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            spatial_merge=SPATIAL_MERGE,
            n_embd=n_embd,
            n_ff=n_ff,
            n_layer=n_layer,
            n_head=n_head,
            text_embd=text_embd,
            eps=1e-6,
            image_mean=[0.48145466, 0.4578275, 0.40821073],
            image_std=[0.26862954, 0.26130258, 0.27577711],
        )

        # Qwen2-VL's Conv3d over two frames, split into one 2-D convolution per frame (a still
        # image goes through both); no bias, no class or position embedding (M-RoPE instead).
        patch = (n_embd, 3, PATCH_SIZE, PATCH_SIZE)
        writer.add_tensor("v.patch_embd.weight", weights(*patch))
        writer.add_tensor("v.patch_embd.weight.1", weights(*patch))
        add_vit_blocks(writer, rng, n_layer=n_layer, n_embd=n_embd, n_ff=n_ff)
        # The merger: its LayerNorm (ln_q) per patch, then an MLP over each 2x2 group.
        writer.add_tensor("v.post_ln.weight", ones(n_embd))
        writer.add_tensor("v.post_ln.bias", weights(n_embd))
        writer.add_tensor("mm.0.weight", weights(merged, merged))
        writer.add_tensor("mm.0.bias", weights(merged))
        writer.add_tensor("mm.2.weight", weights(text_embd, merged))
        writer.add_tensor("mm.2.bias", weights(text_embd))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a tiny random-weight Qwen2-VL-style text model and its projector."
    )
    parser.add_argument("model", type=Path, help="output text model .gguf path")
    parser.add_argument("mmproj", type=Path, help="output projector .gguf path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file-type", choices=sorted(FILE_TYPES), default="F32")
    args = parser.parse_args(argv)
    model = write_tiny_qwen2vl_text(args.model, seed=args.seed, file_type=args.file_type)
    mmproj = write_tiny_qwen2vl_mmproj(args.mmproj, seed=args.seed)
    for out in (model, mmproj):
        print(f"{out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write a tiny random-weight Gemma 3-style vision model: a ``gemma3`` text GGUF and its projector.

What sets Gemma 3 apart from the LLaVA and Qwen2-VL fixtures is how the language model reads a
picture: all at once, each of its embeddings attending to every other (``mtmd`` reports it with
``mtmd_decode_use_non_causal``), so a picture must go into one decode with causal attention off.
That is what these fixtures exercise; the weights are random (seeded), so what the model says is
noise.

* :func:`write_tiny_gemma3_text`: llama.cpp architecture ``gemma3`` (RMS norms before and after
  attention and the MLP, per-head q/k norms, embeddings scaled by sqrt(n_embd), a sliding-window
  attention cache as Gemma 3's), with ``tiny_gguf.py``'s SPM vocabulary
  and ChatML template, plus the control tokens ``<start_of_image>`` and ``<end_of_image>``
  appended (``mtmd`` writes them around every image).
* :func:`write_tiny_gemma3_mmproj`: a ``gemma3`` projector (``clip.projector_type``): a SigLIP
  ViT of a few blocks over 8x8 patches, an average pool over each :data:`POOL` x :data:`POOL`
  group of patches, an RMS norm and a linear projection into the language model's width.

Every picture is resized to :data:`IMAGE_SIZE` square, so it always becomes :data:`IMAGE_TOKENS`
embeddings, one position each.

The output is deterministic: the same arguments always give the same bytes (same sha256).

Usable as a library and as a script (writes both files)::

    python registry-fixtures/tiny_gemma3.py MODEL.gguf MMPROJ.gguf [--seed N]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import gguf
import numpy as np
from tiny_gguf import (
    DEFAULT_CHAT_TEMPLATE,
    DecoderHParams,
    add_decoder_header,
    add_spm_tokenizer,
    build_vocab,
    gguf_writer,
)
from tiny_mmproj import add_clip_header, add_vit_blocks, vit_weights

#: Control tokens appended to ``tiny_gguf``'s vocabulary; ``mtmd`` puts them around an image.
VISION_TOKENS = ("<start_of_image>", "<end_of_image>")

IMAGE_SIZE = 64
PATCH_SIZE = 8
#: Patches averaged into one embedding along each side (``clip.vision.projector.scale_factor``;
#: Gemma 3's own projectors leave it out and llama.cpp takes 4).
POOL = 2
#: Embeddings every picture becomes.
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE // POOL) ** 2


def write_tiny_gemma3_text(
    path: Path | str,
    *,
    seed: int = 0,
    chat_template: str | None = DEFAULT_CHAT_TEMPLATE,
    context_length: int = 256,
    n_embd: int = 64,
    n_layer: int = 4,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_vocab: int = 512,
    sliding_window: int = 512,
    scale: float = 0.2,
    name: str = "tiny-gemma3",
) -> Path:
    """Write the tiny ``gemma3`` text model (F32) to ``path`` and return the path.

    The vocabulary is ``tiny_gguf.build_vocab(n_vocab)`` (so text tokenizes as with
    ``tiny_gguf.py``'s model) with :data:`VISION_TOKENS` appended at ids ``n_vocab`` and
    ``n_vocab + 1``. ``sliding_window``: ``gemma3.attention.sliding_window``, which makes
    llama.cpp keep the sliding-window layers' cache apart as it does for Gemma 3 (with fewer than
    six layers every layer slides); the default is wider than the context, so it cuts nothing.
    ``scale``: the weights' standard deviation. The defaults are chosen so that the picture,
    and whether it is read all at once, change the greedy tokens from the first or second on
    (with 2 layers, or weights of 0.05, two pictures gave the same answer). The output matrix is
    its own, not tied to the embeddings as Gemma's is: tied, a random model repeats its last
    token whatever it was shown.
    """
    vocab_size = n_vocab + len(VISION_TOKENS)
    hp = DecoderHParams(
        context_length, vocab_size, n_embd, n_layer, n_head, n_head_kv, n_ff, rms_eps=1e-6
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    tokens, scores, types = build_vocab(n_vocab, VISION_TOKENS)
    rng = np.random.default_rng(seed)

    def matrix(rows: int, cols: int) -> np.ndarray:
        # numpy shape (rows, cols) is GGUF shape [cols, rows]: cols is the contiguous dimension.
        return rng.standard_normal((rows, cols), dtype=np.float32) * scale

    def norm(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    names, t = gguf.TENSOR_NAMES, gguf.MODEL_TENSOR
    kv_dim = hp.head_dim * n_head_kv
    with gguf_writer(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GEMMA3]) as writer:
        add_decoder_header(writer, hp, name=name, file_type=gguf.LlamaFileType.ALL_F32)
        writer.add_sliding_window(sliding_window)
        add_spm_tokenizer(writer, tokens, scores, types, chat_template)
        writer.add_tensor(names[t.TOKEN_EMBD] + ".weight", matrix(vocab_size, n_embd))
        for i in range(n_layer):

            def add(part: gguf.MODEL_TENSOR, array: np.ndarray, i: int = i) -> None:
                writer.add_tensor(names[part].format(bid=i) + ".weight", array)

            add(t.ATTN_NORM, norm(n_embd))
            add(t.ATTN_Q, matrix(n_embd, n_embd))
            add(t.ATTN_K, matrix(kv_dim, n_embd))
            add(t.ATTN_V, matrix(kv_dim, n_embd))
            add(t.ATTN_Q_NORM, norm(hp.head_dim))
            add(t.ATTN_K_NORM, norm(hp.head_dim))
            add(t.ATTN_OUT, matrix(n_embd, n_embd))
            add(t.ATTN_POST_NORM, norm(n_embd))
            add(t.FFN_NORM, norm(n_embd))
            add(t.FFN_GATE, matrix(n_ff, n_embd))
            add(t.FFN_UP, matrix(n_ff, n_embd))
            add(t.FFN_DOWN, matrix(n_embd, n_ff))
            add(t.FFN_POST_NORM, norm(n_embd))
        writer.add_tensor(names[t.OUTPUT_NORM] + ".weight", norm(n_embd))
        writer.add_tensor(names[t.OUTPUT] + ".weight", matrix(vocab_size, n_embd))
    return path


def write_tiny_gemma3_mmproj(
    path: Path | str,
    *,
    seed: int = 0,
    text_embd: int = 64,
    n_embd: int = 32,
    n_ff: int = 48,
    n_layer: int = 2,
    n_head: int = 4,
) -> Path:
    """Write the ``gemma3`` projector to ``path`` and return it. ``text_embd`` must be the
    language model's embedding width; ``n_ff`` must differ from ``n_embd`` (llama.cpp takes equal
    widths for an old conversion with swapped up/down matrices)."""
    if n_ff == n_embd:
        raise ValueError("n_ff must differ from n_embd")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = partial(vit_weights, rng)
    n_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    with gguf_writer(path, "clip") as writer:
        add_clip_header(
            writer,
            name="tiny-gemma3-mmproj",
            projector_type="gemma3",
            use_gelu=True,  # SigLIP's MLP uses GELU
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            n_embd=n_embd,
            n_ff=n_ff,
            n_layer=n_layer,
            n_head=n_head,
            text_embd=text_embd,
            eps=1e-6,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        )
        writer.add_uint32("clip.vision.projector.scale_factor", POOL)

        # SigLIP: a biased patch convolution and learned positions, no pre-norm.
        writer.add_tensor("v.patch_embd.weight", weights(n_embd, 3, PATCH_SIZE, PATCH_SIZE))
        writer.add_tensor("v.patch_embd.bias", weights(n_embd))
        writer.add_tensor("v.position_embd.weight", weights(n_patches, n_embd))
        add_vit_blocks(writer, rng, n_layer=n_layer, n_embd=n_embd, n_ff=n_ff)
        writer.add_tensor("v.post_ln.weight", ones(n_embd))
        writer.add_tensor("v.post_ln.bias", weights(n_embd))
        # After the pool: the soft-embedding RMS norm, then the projection, numpy shape
        # (n_embd, text_embd) as Gemma 3's converter writes it (GGUF [text_embd, n_embd]).
        writer.add_tensor("mm.soft_emb_norm.weight", ones(n_embd))
        writer.add_tensor("mm.input_projection.weight", weights(n_embd, text_embd))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a tiny random-weight Gemma 3-style text model and its projector."
    )
    parser.add_argument("model", type=Path, help="output text model .gguf path")
    parser.add_argument("mmproj", type=Path, help="output projector .gguf path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = write_tiny_gemma3_text(args.model, seed=args.seed)
    mmproj = write_tiny_gemma3_mmproj(args.mmproj, seed=args.seed)
    for out in (model, mmproj):
        print(f"{out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write a tiny random-weight CLIP image projector (mmproj GGUF) for the tiny llama model.

llama.cpp's ``mtmd`` library loads it as a LLaVA-style projector (``clip.projector_type`` "mlp"):
a ViT of a few blocks over 8x8 patches of a 32x32 image, then a two-layer MLP into the language
model's embedding width (64 for ``tiny_gguf.py``'s default). An image becomes 16 embeddings the
model attends to like tokens. The weights are random (seeded), so different pictures give
different embeddings and the model's output depends on the picture, which is what a test needs.

Usable as a library (``write_tiny_mmproj(path)``) and as a script::

    python registry-fixtures/tiny_mmproj.py OUT.gguf [--seed N] [--text-embd 64]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import gguf
import numpy as np
from tiny_gguf import gguf_writer

IMAGE_SIZE = 32
PATCH_SIZE = 8
#: Embeddings an image becomes: one per patch.
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2


def vit_weights(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Random F32 projector weights of numpy ``shape``, drawn from ``rng``."""
    # numpy shape is the reverse of GGUF's: the last dimension is the contiguous one.
    return (rng.standard_normal(shape, dtype=np.float32) * 0.2).astype(np.float32)


def add_clip_header(
    writer: gguf.GGUFWriter,
    *,
    name: str,
    projector_type: str,
    use_gelu: bool,
    image_size: int,
    patch_size: int,
    n_embd: int,
    n_ff: int,
    n_layer: int,
    n_head: int,
    text_embd: int,
    eps: float,
    image_mean: Sequence[float],
    image_std: Sequence[float],
    spatial_merge: int | None = None,
) -> None:
    """The keys ``mtmd`` reads of an F32 vision projector, in the order the fixtures' bytes depend
    on. ``use_gelu=False`` writes no ``clip.use_gelu`` (the ViT's MLP then uses quick GELU);
    ``spatial_merge`` adds ``clip.vision.spatial_merge_size`` (Qwen2-VL's merger)."""
    writer.add_name(name)
    writer.add_type("mmproj")
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_string("clip.projector_type", projector_type)
    writer.add_bool("clip.has_vision_encoder", True)
    if use_gelu:
        writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", image_size)
    writer.add_uint32("clip.vision.patch_size", patch_size)
    if spatial_merge is not None:
        writer.add_uint32("clip.vision.spatial_merge_size", spatial_merge)
    writer.add_uint32("clip.vision.embedding_length", n_embd)
    writer.add_uint32("clip.vision.feed_forward_length", n_ff)
    writer.add_uint32("clip.vision.block_count", n_layer)
    writer.add_uint32("clip.vision.projection_dim", text_embd)
    writer.add_uint32("clip.vision.attention.head_count", n_head)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", eps)
    writer.add_array("clip.vision.image_mean", list(image_mean))
    writer.add_array("clip.vision.image_std", list(image_std))


def add_vit_blocks(
    writer: gguf.GGUFWriter, rng: np.random.Generator, *, n_layer: int, n_embd: int, n_ff: int
) -> None:
    """The ``v.blk.{i}`` ViT blocks (biased attention, two LayerNorms, a biased MLP) that both
    projectors share, drawn from ``rng`` in a fixed order so a seed always gives the same bytes."""
    for i in range(n_layer):
        block = f"v.blk.{i}"
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"{block}.{part}.weight", vit_weights(rng, n_embd, n_embd))
            writer.add_tensor(f"{block}.{part}.bias", vit_weights(rng, n_embd))
        for norm in ("ln1", "ln2"):
            writer.add_tensor(f"{block}.{norm}.weight", np.ones(n_embd, dtype=np.float32))
            writer.add_tensor(f"{block}.{norm}.bias", vit_weights(rng, n_embd))
        writer.add_tensor(f"{block}.ffn_up.weight", vit_weights(rng, n_ff, n_embd))
        writer.add_tensor(f"{block}.ffn_up.bias", vit_weights(rng, n_ff))
        writer.add_tensor(f"{block}.ffn_down.weight", vit_weights(rng, n_embd, n_ff))
        writer.add_tensor(f"{block}.ffn_down.bias", vit_weights(rng, n_embd))


def write_tiny_mmproj(
    path: Path | str,
    *,
    seed: int = 0,
    text_embd: int = 64,
    n_embd: int = 32,
    n_ff: int = 48,
    n_layer: int = 3,
    n_head: int = 4,
    hidden: int = 64,
) -> Path:
    """Write the projector to ``path`` and return it. ``text_embd`` must be the language model's
    embedding width; ``n_ff`` must differ from ``n_embd`` (llama.cpp takes equal widths for an
    old conversion with swapped up/down matrices). The LLaVA graph runs ``n_layer - 1`` blocks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_patches = IMAGE_TOKENS
    weights = partial(vit_weights, rng)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    with gguf_writer(path, "clip") as writer:
        add_clip_header(
            writer,
            name="tiny-mmproj",
            projector_type="mlp",
            use_gelu=True,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            n_embd=n_embd,
            n_ff=n_ff,
            n_layer=n_layer,
            n_head=n_head,
            text_embd=text_embd,
            eps=1e-5,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        )

        writer.add_tensor("v.patch_embd.weight", weights(n_embd, 3, PATCH_SIZE, PATCH_SIZE))
        writer.add_tensor("v.position_embd.weight", weights(n_patches, n_embd))
        writer.add_tensor("v.pre_ln.weight", ones(n_embd))
        writer.add_tensor("v.pre_ln.bias", weights(n_embd))
        add_vit_blocks(writer, rng, n_layer=n_layer, n_embd=n_embd, n_ff=n_ff)
        writer.add_tensor("mm.0.weight", weights(hidden, n_embd))
        writer.add_tensor("mm.0.bias", weights(hidden))
        writer.add_tensor("mm.2.weight", weights(text_embd, hidden))
        writer.add_tensor("mm.2.bias", weights(text_embd))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a tiny random-weight CLIP projector.")
    parser.add_argument("out", type=Path, help="output .gguf path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text-embd", type=int, default=64, help="the model's embedding width")
    args = parser.parse_args(argv)
    out = write_tiny_mmproj(args.out, seed=args.seed, text_embd=args.text_embd)
    print(f"{out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

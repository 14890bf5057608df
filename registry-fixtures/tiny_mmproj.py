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
from pathlib import Path

import gguf
import numpy as np

IMAGE_SIZE = 32
PATCH_SIZE = 8
#: Embeddings an image becomes: one per patch.
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2


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

    def weights(*shape: int) -> np.ndarray:
        # numpy shape is the reverse of GGUF's: the last dimension is the contiguous one.
        return (rng.standard_normal(shape, dtype=np.float32) * 0.2).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    writer = gguf.GGUFWriter(path, "clip")
    try:
        writer.add_name("tiny-mmproj")
        writer.add_type("mmproj")
        writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
        writer.add_string("clip.projector_type", "mlp")
        writer.add_bool("clip.has_vision_encoder", True)
        writer.add_bool("clip.use_gelu", True)
        writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
        writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
        writer.add_uint32("clip.vision.embedding_length", n_embd)
        writer.add_uint32("clip.vision.feed_forward_length", n_ff)
        writer.add_uint32("clip.vision.block_count", n_layer)
        writer.add_uint32("clip.vision.projection_dim", text_embd)
        writer.add_uint32("clip.vision.attention.head_count", n_head)
        writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
        writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
        writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

        writer.add_tensor("v.patch_embd.weight", weights(n_embd, 3, PATCH_SIZE, PATCH_SIZE))
        writer.add_tensor("v.position_embd.weight", weights(n_patches, n_embd))
        writer.add_tensor("v.pre_ln.weight", ones(n_embd))
        writer.add_tensor("v.pre_ln.bias", weights(n_embd))
        for i in range(n_layer):
            block = f"v.blk.{i}"
            for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
                writer.add_tensor(f"{block}.{part}.weight", weights(n_embd, n_embd))
                writer.add_tensor(f"{block}.{part}.bias", weights(n_embd))
            for norm in ("ln1", "ln2"):
                writer.add_tensor(f"{block}.{norm}.weight", ones(n_embd))
                writer.add_tensor(f"{block}.{norm}.bias", weights(n_embd))
            writer.add_tensor(f"{block}.ffn_up.weight", weights(n_ff, n_embd))
            writer.add_tensor(f"{block}.ffn_up.bias", weights(n_ff))
            writer.add_tensor(f"{block}.ffn_down.weight", weights(n_embd, n_ff))
            writer.add_tensor(f"{block}.ffn_down.bias", weights(n_embd))
        writer.add_tensor("mm.0.weight", weights(hidden, n_embd))
        writer.add_tensor("mm.0.bias", weights(hidden))
        writer.add_tensor("mm.2.weight", weights(text_embd, hidden))
        writer.add_tensor("mm.2.bias", weights(text_embd))

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
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

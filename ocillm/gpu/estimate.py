"""How much memory a model needs: weights per block, KV cache, compute graph, output layer.

The input is :class:`ModelShape`, just the numbers the estimate uses, so tests can make one by hand;
:meth:`ModelShape.from_gguf_info` adapts what ``ocillm.gguf.read_gguf_info`` returns. The formulas
follow llama.cpp's allocations the way Ollama's historical ``estimateGPULayers`` did (f16 KV cache,
the llama compute-graph formula for full and partial offload). A speculative-decoding draft is
folded into the model's layers, a vision projector (:class:`ProjectorShape`) is one block of bytes
placed whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

#: Bytes per KV-cache element (llama.cpp's default f16 cache).
KV_F16 = 2.0
#: Bytes per element of each KV cache type (``OCILLM_KV_CACHE_TYPE``): q8_0 stores 32 values in
#: 34 bytes, q4_0 in 18 (ggml's block sizes).
KV_BYTES_PER_ELEMENT = {"f16": KV_F16, "q8_0": 34 / 32, "q4_0": 18 / 32}

_BLOCK = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a GGUF model that decide its memory."""

    block_count: int
    embedding_length: int
    head_count: int
    head_count_kv: int
    vocab_size: int
    layer_bytes: Mapping[int, int]  # weights of blk.N, in bytes
    output_bytes: int  # output_norm + output (or token_embd when tied): the "last layer"
    total_bytes: int  # every tensor in the file
    key_length: int = 0  # per head; 0 = embedding_length / head_count
    value_length: int = 0
    context_length: int = 0  # the trained context; 0 = unknown

    @property
    def head_dim_k(self) -> int:
        return self.key_length or self.embedding_length // max(self.head_count, 1)

    @property
    def head_dim_v(self) -> int:
        return self.value_length or self.embedding_length // max(self.head_count, 1)

    @classmethod
    def from_gguf_info(cls, info: Any) -> ModelShape:
        """Adapt a ``GGUFInfo``: its scalar fields, ``layer_bytes`` and ``tensors`` (name, bytes)."""
        output = _output_bytes(_tensor_sizes(getattr(info, "tensors", ()) or ()))
        return cls(
            block_count=int(info.block_count or 0),
            embedding_length=int(info.embedding_length or 0),
            head_count=int(info.head_count or 0),
            head_count_kv=int(info.head_count_kv or info.head_count or 0),
            vocab_size=int(info.vocab_size or 0),
            layer_bytes={int(k): int(v) for k, v in (info.layer_bytes or {}).items()},
            output_bytes=output,
            total_bytes=int(info.tensor_bytes or 0),
            key_length=int(getattr(info, "key_length", 0) or 0),
            value_length=int(getattr(info, "value_length", 0) or 0),
            context_length=int(getattr(info, "context_length", 0) or 0),
        )


@dataclass(frozen=True)
class ProjectorShape:
    """A vision projector (an mmproj CLIP GGUF): its weights and the image dimensions that size its
    compute buffer."""

    weights: int
    image_size: int = 0  # pixels per side of the largest image it encodes
    patch_size: int = 0
    embedding_length: int = 0
    head_count: int = 0

    @property
    def compute_bytes(self) -> int:
        """One image through the encoder in f32: every head's patch x patch attention scores plus a
        few rows of embedding width (llama.cpp reserves the buffer for the largest image)."""
        side = self.image_size // max(self.patch_size, 1)
        patches = side * side
        return 4 * patches * (patches * self.head_count + 4 * self.embedding_length)

    @property
    def total_bytes(self) -> int:
        return self.weights + self.compute_bytes

    @classmethod
    def from_gguf_info(cls, info: Any) -> ProjectorShape:
        meta = getattr(info, "metadata", None) or {}

        def vision(key: str) -> int:
            value = meta.get(f"clip.vision.{key}")
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        return cls(
            weights=int(info.tensor_bytes or 0),
            image_size=vision("image_size"),
            patch_size=vision("patch_size"),
            embedding_length=vision("embedding_length"),
            head_count=vision("attention.head_count"),
        )


def _tensor_sizes(tensors: Iterable[Any]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for t in tensors:
        name = getattr(t, "name", None)
        size = next(
            (getattr(t, a) for a in ("n_bytes", "nbytes", "size", "bytes") if hasattr(t, a)), None
        )
        if isinstance(name, str) and isinstance(size, int):
            sizes[name] = size
    return sizes


def _output_bytes(sizes: Mapping[str, int]) -> int:
    total = sizes.get("output_norm.weight", 0)
    if "output.weight" in sizes:
        return total + sizes["output.weight"]
    return total + sizes.get("token_embd.weight", 0)


def layer_bytes_from_tensors(tensors: Mapping[str, int]) -> dict[int, int]:
    """Sum tensor sizes per ``blk.N``: a helper for callers that hold a tensor table."""
    out: dict[int, int] = {}
    for name, size in tensors.items():
        m = _BLOCK.match(name)
        if m:
            out[int(m.group(1))] = out.get(int(m.group(1)), 0) + size
    return out


@dataclass(frozen=True)
class EstimateOptions:
    num_ctx: int = 4096
    num_batch: int = 512
    num_parallel: int = 1
    kv_bytes_per_element: float = KV_F16


@dataclass(frozen=True)
class MemoryNeeds:
    """What a model needs, before deciding where it goes."""

    block_count: int
    layer_weights: tuple[int, ...]  # per block
    layer_kv: tuple[int, ...]  # per block, for num_ctx x num_parallel
    output_bytes: int
    total_weights: int
    graph_full: int  # compute buffer when everything is on one device
    graph_partial: int  # compute buffer per device when split
    num_ctx: int = 0  # per slot
    #: Loaded whole beside the layers (a vision projector): on the first GPU when any layer is on a
    #: GPU, else in system memory.
    projector_bytes: int = 0

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Weights plus KV cache of each block: what offloading that block costs."""
        return tuple(w + k for w, k in zip(self.layer_weights, self.layer_kv, strict=False))

    @property
    def kv_total(self) -> int:
        return sum(self.layer_kv)

    @property
    def cpu_size(self) -> int:
        """Everything in system memory: weights, KV cache, the compute buffer and the projector."""
        return self.total_weights + self.kv_total + self.graph_partial + self.projector_bytes


def estimate(
    shape: ModelShape,
    options: EstimateOptions = EstimateOptions(),
    *,
    draft: ModelShape | None = None,
    projector: ProjectorShape | None = None,
) -> MemoryNeeds:
    """The memory of ``shape`` with ``num_ctx`` tokens in each of ``num_parallel`` slots, with the
    speculative-decoding ``draft`` and the vision ``projector`` the runner loads beside it."""
    needs = _estimate(shape, options)
    if draft is not None:
        # The runner gives the draft the model's context (not capped at the draft's own) and slots.
        unbounded = replace(draft, context_length=0)
        needs = _with_draft(needs, _estimate(unbounded, replace(options, num_ctx=needs.num_ctx)))
    if projector is not None:
        needs = replace(needs, projector_bytes=projector.total_bytes)
    return needs


def _with_draft(needs: MemoryNeeds, draft: MemoryNeeds) -> MemoryNeeds:
    """``needs`` with the draft folded into its layers. The draft gets the model's -ngl, and
    llama.cpp offloads the last N blocks of each model (the output once N passes the block count),
    so draft block D-1-j is costed with model block B-1-j and the draft's output with the block
    before the draft's first: the layer walk then puts both where the runner will. A draft with more
    blocks than the model has its extra first blocks costed with the model's first."""
    b, d = needs.block_count, draft.block_count
    graph_full = needs.graph_full + draft.graph_full
    graph_partial = needs.graph_partial + draft.graph_partial
    total = needs.total_weights + draft.total_weights
    if b == 0:  # no layers to pair with: the model stays in system memory, and the draft with it
        return replace(
            needs,
            total_weights=total + draft.kv_total,
            graph_full=graph_full,
            graph_partial=graph_partial,
        )
    weights, kv = list(needs.layer_weights), list(needs.layer_kv)
    for j in range(d):
        i = max(b - 1 - j, 0)
        weights[i] += draft.layer_weights[d - 1 - j]
        kv[i] += draft.layer_kv[d - 1 - j]
    output = needs.output_bytes
    if d < b:
        weights[b - 1 - d] += draft.output_bytes
    else:
        output += draft.output_bytes
    return replace(
        needs,
        layer_weights=tuple(weights),
        layer_kv=tuple(kv),
        output_bytes=output,
        total_weights=total,
        graph_full=graph_full,
        graph_partial=graph_partial,
    )


def _estimate(shape: ModelShape, options: EstimateOptions) -> MemoryNeeds:
    num_ctx = options.num_ctx
    if shape.context_length > 0:
        num_ctx = min(num_ctx, shape.context_length)
    ctx = num_ctx * max(options.num_parallel, 1)
    batch = max(min(num_ctx, options.num_batch), 1)
    emb, heads, vocab = shape.embedding_length, max(shape.head_count, 1), shape.vocab_size
    heads_kv = max(shape.head_count_kv, 1)
    kh, vh = shape.head_dim_k, shape.head_dim_v

    kv_layer = int(ctx * (kh + vh) * heads_kv * options.kv_bytes_per_element)
    blocks = shape.block_count
    weights = tuple(int(shape.layer_bytes.get(i, 0)) for i in range(blocks))
    kv = tuple(kv_layer for _ in range(blocks))

    logits = 4 * batch * (emb + vocab)
    full = max(4 * batch * (1 + 4 * emb + ctx * (1 + heads)), logits)
    partial = 4 * batch * emb + max(
        4 * batch * (1 + emb + max(ctx, emb))
        + emb * emb * 9 // 16
        + 4 * ctx * (batch * heads + kh * heads_kv),
        logits + emb * vocab * 105 // 128,
    )
    if emb == 0:  # a shape with no dimensions: fall back to a share of the KV cache
        gqa = heads // heads_kv
        partial = full = gqa * sum(kv) // 6
    return MemoryNeeds(
        block_count=blocks,
        layer_weights=weights,
        layer_kv=kv,
        output_bytes=shape.output_bytes,
        total_weights=max(shape.total_bytes, sum(weights) + shape.output_bytes),
        graph_full=full,
        graph_partial=partial,
        num_ctx=num_ctx,
    )

"""The draft model and the vision projector in the memory estimate and in placement."""

from __future__ import annotations

from pathlib import Path

from scheduler_support import LLAMA_SHAPE, SMALL_SHAPE

from ocillm.gguf import read_gguf_info
from ocillm.gpu import (
    EstimateOptions,
    Inventory,
    MemoryNeeds,
    ModelShape,
    ProjectorShape,
    SystemMemory,
    estimate,
    fake_gpu,
    place,
)

MiB = 1 << 20
GiB = 1 << 30
OPTS = EstimateOptions(num_ctx=2048, num_parallel=2)
#: SMALL_SHAPE as a draft: 4 blocks of 10 MiB, a 5 MiB output, 50 MiB of tensors; its KV cache is
#: 2048 tokens x 2 slots x (64 + 64) head dims x 4 KV heads x 2 bytes = 4 MiB a block.
DRAFT = SMALL_SHAPE
DRAFT_KV = 4 * MiB
GPU = Inventory(gpus=(fake_gpu(0, 8 * GiB),), system=SystemMemory(total=16 * GiB, free=16 * GiB))


def base() -> MemoryNeeds:
    return estimate(LLAMA_SHAPE, OPTS)


def with_draft(draft: ModelShape = DRAFT) -> MemoryNeeds:
    return estimate(LLAMA_SHAPE, OPTS, draft=draft)


def test_a_draft_adds_its_weights_and_kv_cache() -> None:
    b, d = base(), with_draft()
    assert d.total_weights == b.total_weights + 50 * MiB
    assert d.kv_total == b.kv_total + 4 * DRAFT_KV
    assert sum(d.layer_sizes) + d.output_bytes == (
        sum(b.layer_sizes) + b.output_bytes + 45 * MiB + 4 * DRAFT_KV
    )
    alone = estimate(DRAFT, OPTS)
    assert d.graph_full == b.graph_full + alone.graph_full
    assert d.cpu_size == b.cpu_size + 50 * MiB + 4 * DRAFT_KV + alone.graph_partial


def test_draft_blocks_are_costed_with_the_blocks_offloaded_with_them() -> None:
    # -ngl offloads the last N blocks of both models: the draft's 4 go with the model's last 4,
    # its output with the block before them.
    d = with_draft()
    assert d.layer_weights[12:] == (74 * MiB,) * 4
    assert d.layer_kv[12] == base().layer_kv[12] + DRAFT_KV
    assert d.layer_weights[11] == 69 * MiB
    assert d.layer_weights[:11] == (64 * MiB,) * 11
    assert d.output_bytes == base().output_bytes


def test_the_draft_gets_the_models_context_not_its_own() -> None:
    short = ModelShape(**{**DRAFT.__dict__, "context_length": 512})
    assert with_draft(short).kv_total == with_draft().kv_total


def test_a_fully_offloaded_draft_is_all_on_the_gpu() -> None:
    b, d = place(base(), GPU), place(with_draft(), GPU)
    assert d.full_offload and d.n_gpu_layers == b.n_gpu_layers
    graph = estimate(DRAFT, OPTS).graph_full
    assert d.size_vram == b.size_vram + 45 * MiB + 4 * DRAFT_KV + graph
    assert d.size == d.size_vram


def test_a_partial_offload_takes_the_drafts_last_blocks_too() -> None:
    b, d = place(base(), GPU, num_gpu=3), place(with_draft(), GPU, num_gpu=3)
    assert b.n_gpu_layers == d.n_gpu_layers == 3
    graph = estimate(DRAFT, OPTS).graph_partial
    assert d.size_vram == b.size_vram + 3 * (10 * MiB + DRAFT_KV) + graph


def test_a_projector_adds_its_size_on_the_gpu_or_in_system_memory() -> None:
    projector = ProjectorShape(weights=100 * MiB)
    n = estimate(LLAMA_SHAPE, OPTS, projector=projector)
    assert n.projector_bytes == 100 * MiB
    assert n.cpu_size == base().cpu_size + 100 * MiB
    on_gpu, alone = place(n, GPU), place(base(), GPU)
    assert on_gpu.n_gpu_layers == alone.n_gpu_layers
    assert on_gpu.size_vram == alone.size_vram + 100 * MiB
    cpu = place(n, GPU, num_gpu=0)
    assert cpu.size == base().cpu_size + 100 * MiB and cpu.size_vram == 0


def test_a_projector_goes_on_the_first_gpu_only() -> None:
    two = Inventory(gpus=(fake_gpu(0, 2 * GiB), fake_gpu(1, 2 * GiB)), system=GPU.system)
    n = estimate(LLAMA_SHAPE, OPTS, projector=ProjectorShape(weights=100 * MiB))
    split, without = place(n, two, spread=True), place(base(), two, spread=True)
    assert split.full_offload and split.layers_per_gpu == without.layers_per_gpu
    first, second = without.vram_per_gpu
    assert split.vram_per_gpu == (first + 100 * MiB, second)


def test_a_projectors_compute_buffer_follows_its_image_size() -> None:
    # Gemma 3's SigLIP: 896 px in 14 px patches (4096), width 1152, 16 heads.
    siglip = ProjectorShape(
        weights=800 * MiB, image_size=896, patch_size=14, embedding_length=1152, head_count=16
    )
    assert siglip.compute_bytes == 4 * 4096 * (4096 * 16 + 4 * 1152) == 1_149_239_296
    assert siglip.total_bytes == 800 * MiB + 1_149_239_296


def test_a_projector_shape_is_read_from_its_gguf(tiny_mmproj: Path) -> None:
    info = read_gguf_info(tiny_mmproj)
    p = ProjectorShape.from_gguf_info(info)
    # registry-fixtures/tiny_mmproj.py: 32 px in 8 px patches (16), width 32, 4 heads
    assert (p.image_size, p.patch_size, p.embedding_length, p.head_count) == (32, 8, 32, 4)
    assert p.weights == info.tensor_bytes > 0
    assert p.compute_bytes == 4 * 16 * (16 * 4 + 4 * 32)

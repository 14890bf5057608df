"""Memory estimation and placement: which GPUs, how many layers, and what /api/ps reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from scheduler_support import LLAMA_SHAPE

from ocillm.gguf import read_gguf_info
from ocillm.gpu import (
    EstimateOptions,
    Inventory,
    MemoryNeeds,
    ModelShape,
    SystemMemory,
    estimate,
    fake_gpu,
    place,
    processor_string,
)

MiB = 1 << 20
GiB = 1 << 30

#: A ~1.3 GB llama-like model: 16 blocks of 64 MiB, a 128 MiB output layer.
SHAPE = LLAMA_SHAPE
RAM = SystemMemory(total=16 * GiB, free=16 * GiB)


def needs(num_ctx: int = 2048, num_parallel: int = 1) -> MemoryNeeds:
    return estimate(SHAPE, EstimateOptions(num_ctx=num_ctx, num_parallel=num_parallel))


def inventory(*gpus: tuple[int, float], system: SystemMemory = RAM) -> Inventory:
    return Inventory(gpus=tuple(fake_gpu(i, int(total * GiB)) for i, total in gpus), system=system)


def test_kv_cache_grows_with_context_and_parallel_slots() -> None:
    one = needs(2048, 1)
    # 2048 tokens x (128 + 128) head dims x 4 KV heads x 2 bytes (f16)
    assert one.layer_kv[0] == 2048 * 256 * 4 * 2
    assert needs(2048, 4).kv_total == 4 * one.kv_total
    assert needs(4096, 1).kv_total == 2 * one.kv_total
    assert needs(4096, 1).graph_partial > one.graph_partial


def test_context_is_capped_at_the_trained_length() -> None:
    shape = ModelShape(**{**SHAPE.__dict__, "context_length": 1024})
    assert estimate(shape, EstimateOptions(num_ctx=8192)).num_ctx == 1024


def test_no_gpu_places_everything_on_the_cpu() -> None:
    p = place(needs(), inventory())
    assert p.n_gpu_layers == 0 and p.gpu_ids == ()
    assert p.size == needs().cpu_size and p.size_vram == 0
    assert p.processor == "100% CPU"
    assert p.fits


def test_one_big_gpu_takes_every_layer() -> None:
    p = place(needs(), inventory((0, 8)))
    assert p.gpu_ids == ("GPU-fake-0",)
    assert p.n_gpu_layers == SHAPE.block_count + 1
    assert p.full_offload and p.fits and p.within_headroom
    assert p.size == p.size_vram
    assert p.processor == "100% GPU"


def test_a_small_gpu_gets_part_of_the_layers() -> None:
    p = place(needs(), inventory((0, 1)))
    assert 0 < p.n_gpu_layers < SHAPE.block_count
    assert not p.full_offload
    assert p.size_vram <= 1 * GiB < p.size
    cpu, gpu = p.processor.split(" ")[0].split("/")
    assert p.processor.endswith("CPU/GPU") and int(cpu[:-1]) + int(gpu[:-1]) == 100


def test_two_gpus_prefer_the_single_best_one() -> None:
    p = place(needs(), inventory((0, 6), (1, 8)))
    assert p.gpu_ids == ("GPU-fake-1",)
    assert p.gpu_indices == (1,)
    assert p.full_offload


def test_two_small_gpus_split_the_model() -> None:
    p = place(needs(), inventory((0, 1.3), (1, 1.3)))
    assert set(p.gpu_ids) == {"GPU-fake-0", "GPU-fake-1"}
    assert p.full_offload
    assert sum(p.layers_per_gpu) == SHAPE.block_count + 1
    assert all(n > 0 for n in p.layers_per_gpu)
    assert sum(p.tensor_split) == pytest.approx(1.0)


def test_spread_uses_every_gpu_even_when_one_would_do() -> None:
    p = place(needs(), inventory((0, 8), (1, 8)), spread=True)
    assert len(p.gpu_ids) == 2 and p.full_offload


def test_num_gpu_zero_means_cpu_and_n_means_at_most_n_layers() -> None:
    assert place(needs(), inventory((0, 8)), num_gpu=0).n_gpu_layers == 0
    p = place(needs(), inventory((0, 8)), num_gpu=4)
    assert p.n_gpu_layers == 4 and not p.full_offload
    assert p.processor.endswith("CPU/GPU")


def test_memory_held_by_loaded_models_is_not_offered_again() -> None:
    inv = inventory((0, 8), (1, 4))
    first = place(needs(), inv)
    assert first.gpu_ids == ("GPU-fake-0",)
    second = place(needs(), inv, used_vram={"GPU-fake-0": 7 * GiB})
    assert second.gpu_ids == ("GPU-fake-1",)


def test_eighty_percent_rule_decides_headroom() -> None:
    full = place(needs(), inventory((0, 8))).size_vram
    snug = place(needs(), inventory((0, full / GiB / 0.9)))
    assert snug.full_offload and snug.fits
    assert not snug.within_headroom


def test_too_little_memory_anywhere_does_not_fit() -> None:
    tiny_ram = SystemMemory(total=512 * MiB, free=256 * MiB)
    assert not place(needs(), inventory(system=tiny_ram)).fits
    assert not place(needs(), inventory((0, 0.5), system=tiny_ram)).fits
    assert not place(needs(), inventory(), used_system=15 * GiB).fits


@pytest.mark.parametrize(
    ("size", "vram", "text"),
    [
        (0, 0, "100% CPU"),
        (1000, 0, "100% CPU"),
        (1000, 1000, "100% GPU"),
        (1000, 520, "48%/52% CPU/GPU"),
        (1000, 2000, "Unknown"),
    ],
)
def test_processor_strings_match_ollama_ps(size: int, vram: int, text: str) -> None:
    assert processor_string(size, vram) == text


def test_shape_from_a_real_gguf(tiny_gguf: Path) -> None:
    info = read_gguf_info(tiny_gguf)
    shape = ModelShape.from_gguf_info(info)
    assert shape.block_count == info.block_count
    assert shape.head_count_kv == info.head_count_kv
    assert sum(shape.layer_bytes.values()) + shape.output_bytes <= shape.total_bytes
    assert shape.output_bytes > 0
    n = estimate(shape, EstimateOptions(num_ctx=128))
    assert n.cpu_size > info.tensor_bytes
    assert place(n, inventory((0, 8))).full_offload

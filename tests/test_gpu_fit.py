"""The memory-fit policy: load a model now, evict an idle one first, or give up."""

from __future__ import annotations

from scheduler_support import LLAMA_SHAPE

from ocillm.gpu import (
    EstimateOptions,
    Inventory,
    ProjectorShape,
    SystemMemory,
    fake_gpu,
    fit,
)

MiB = 1 << 20
GiB = 1 << 30
OPTS = EstimateOptions(num_ctx=2048)
RAM = SystemMemory(total=16 * GiB, free=16 * GiB)


def inventory(*gpu_gib: float, system: SystemMemory = RAM) -> Inventory:
    return Inventory(
        gpus=tuple(fake_gpu(i, int(g * GiB)) for i, g in enumerate(gpu_gib)), system=system
    )


def test_a_model_alone_loads_fully_on_a_big_gpu() -> None:
    f = fit(LLAMA_SHAPE, OPTS, inventory(8), [])
    assert f.verdict == "load"
    assert f.placement.full_offload and f.library == "cuda"
    assert f.num_ctx == 2048


def test_a_model_alone_loads_partially_on_a_small_gpu() -> None:
    f = fit(LLAMA_SHAPE, OPTS, inventory(1), [])
    assert f.verdict == "load" and not f.placement.full_offload and f.placement.on_gpu


def test_a_second_model_loads_beside_the_first_when_both_fit() -> None:
    gpus = inventory(8)
    first = fit(LLAMA_SHAPE, OPTS, gpus, []).placement
    f = fit(LLAMA_SHAPE, OPTS, gpus, [first])
    assert f.verdict == "load" and f.placement.full_offload


def test_a_second_model_that_does_not_fit_beside_means_evicting() -> None:
    gpus = inventory(3)
    first = fit(LLAMA_SHAPE, OPTS, gpus, []).placement
    f = fit(LLAMA_SHAPE, OPTS, gpus, [first])
    # It would fit partially, but beside a loaded model only a full offload within headroom will.
    assert f.placement.fits and not f.placement.full_offload
    assert f.verdict == "evict"


def test_a_projector_can_be_what_makes_room_run_out() -> None:
    gpus = inventory(8)
    first = fit(LLAMA_SHAPE, OPTS, gpus, []).placement
    big = ProjectorShape(weights=5 * GiB)
    assert fit(LLAMA_SHAPE, OPTS, gpus, [first]).verdict == "load"
    assert fit(LLAMA_SHAPE, OPTS, gpus, [first], projector=big).verdict == "evict"
    assert fit(LLAMA_SHAPE, OPTS, gpus, [], projector=big).verdict == "load"


def test_cpu_models_load_beside_each_other_while_system_memory_lasts() -> None:
    ram = inventory()
    first = fit(LLAMA_SHAPE, OPTS, ram, []).placement
    assert fit(LLAMA_SHAPE, OPTS, ram, [first]).verdict == "load"
    # Free memory may not show yet what the loaded runner holds: its estimate counts against total.
    room = first.size + 100 * MiB
    tight = inventory(system=SystemMemory(total=room, free=room))
    assert fit(LLAMA_SHAPE, OPTS, tight, [first]).verdict == "evict"


def test_too_little_system_memory_alone_is_insufficient() -> None:
    small = SystemMemory(total=512 * MiB, free=256 * MiB)
    f = fit(LLAMA_SHAPE, OPTS, inventory(system=small), [])
    assert f.verdict == "insufficient" and f.library is None
    assert f.required == f.placement.size > 256 * MiB
    assert f.available == 256 * MiB


def test_a_partial_offload_can_run_out_of_system_memory_for_the_rest() -> None:
    small = SystemMemory(total=512 * MiB, free=256 * MiB)
    f = fit(LLAMA_SHAPE, OPTS, inventory(1, system=small), [])
    assert f.verdict == "insufficient"
    assert f.required == f.placement.size - f.placement.size_vram > 256 * MiB

"""Where a model goes: how many layers on which GPUs, and whether it fits beside loaded models.

The layer walk is Ollama's historical ``estimateGPULayers``: a GPU qualifies when it holds the
graph, its runtime minimum and two layers; blocks are assigned from the last to the first,
round-robin over the GPUs that still have room; the output layer goes last. A single GPU is tried
first (the one with most free memory whose predicted use is at most 80% of its free memory), then
growing groups of GPUs, then a partial offload over all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ocillm.gpu.estimate import MemoryNeeds
from ocillm.gpu.processor import processor_string
from ocillm.gpu.types import GpuDevice, Inventory

MiB = 1 << 20
#: Memory each runtime keeps for itself on a device (Ollama's ``MinimumMemory``).
MINIMUM_MEMORY = {"cuda": 457 * MiB, "rocm": 457 * MiB, "metal": 512 * MiB}
#: A model placed on one GPU beside others may use at most this share of that GPU's free memory.
HEADROOM = 0.8


@dataclass(frozen=True)
class Placement:
    """The decision for one model. ``size`` and ``size_vram`` are what ``/api/ps`` reports."""

    gpu_ids: tuple[str, ...]  # GPUs that hold layers, in tensor-split order
    gpu_indices: tuple[int, ...]  # their runtime ordinals
    library: str | None  # "cuda", "rocm", "metal"; None on CPU
    n_gpu_layers: int  # llama.cpp's -ngl: block_count + 1 means every block and the output
    layers_per_gpu: tuple[int, ...]
    vram_per_gpu: tuple[int, ...]
    size: int
    size_vram: int
    full_offload: bool  # every block and the output layer on GPUs
    fits: bool  # the GPU part fits the GPUs' free memory and the rest fits system memory
    within_headroom: bool  # VRAM use <= 80% of the chosen GPUs' free memory

    @property
    def processor(self) -> str:
        return processor_string(self.size, self.size_vram)

    @property
    def tensor_split(self) -> tuple[float, ...]:
        """Shares of the offloaded layers per GPU, for llama.cpp's ``tensor_split``."""
        total = sum(self.layers_per_gpu)
        return tuple(n / total for n in self.layers_per_gpu) if total else ()

    @property
    def on_gpu(self) -> bool:
        return self.n_gpu_layers > 0


@dataclass(frozen=True)
class _Layout:
    gpus: tuple[GpuDevice, ...]
    layers: tuple[int, ...]
    vram: tuple[int, ...]
    count: int
    overflow: int
    full: bool


def _free(gpu: GpuDevice, used: Mapping[str, int]) -> int:
    """Free memory, not counting twice what our own loaded models already hold."""
    return max(min(gpu.free_memory, gpu.total_memory - used.get(gpu.id, 0)), 0)


def _layout(
    needs: MemoryNeeds,
    gpus: Sequence[GpuDevice],
    free: Mapping[str, int],
    num_gpu: int,
    overhead: int,
) -> _Layout:
    graph = max(needs.graph_full, needs.graph_partial)
    sizes = needs.layer_sizes
    first = sizes[0] if sizes else 0
    alloc = {g.id: 0 for g in gpus}
    layers = {g.id: 0 for g in gpus}
    room: list[GpuDevice] = []
    for g in gpus:
        minimum = MINIMUM_MEMORY.get(g.library, 0)
        whole = 0 if room else needs.projector_bytes  # on the main GPU: the first with room
        if free[g.id] >= overhead + graph + minimum + whole + 2 * first:
            room.append(g)
            alloc[g.id] = minimum + whole + first  # one layer's worth held back as a buffer

    count = overflow = 0
    for i in reversed(range(needs.block_count)):
        size = sizes[i]
        if 0 <= num_gpu <= count:
            overflow += size
            continue
        placed = False
        while room:
            g = room[i % len(room)]
            if free[g.id] > overhead + alloc[g.id] + graph + size:
                alloc[g.id] += size
                layers[g.id] += 1
                count += 1
                placed = True
                break
            room.remove(g)
        if not placed:
            overflow += size

    output_placed = False
    if not needs.output_bytes:  # unknown output size: it rides along with the last block
        output_placed = True
        count += 1 if count == needs.block_count else 0
    elif num_gpu < 0 or count < num_gpu:
        for j in range(len(room)):
            g = room[(count + j) % len(room)]
            if free[g.id] > overhead + alloc[g.id] + graph + needs.output_bytes:
                alloc[g.id] += needs.output_bytes
                layers[g.id] += 1
                count += 1
                output_placed = True
                break
    if not output_placed:
        overflow += needs.output_bytes
    full = count >= needs.block_count + 1

    used = [g for g in gpus if layers[g.id] > 0]
    graph_each = needs.graph_full if full and len(used) == 1 else needs.graph_partial
    return _Layout(
        gpus=tuple(used),
        layers=tuple(layers[g.id] for g in used),
        vram=tuple(alloc[g.id] + graph_each for g in used),
        count=count,
        overflow=overflow,
        full=full,
    )


def _cpu(needs: MemoryNeeds, inventory: Inventory, used_system: int) -> Placement:
    size = needs.cpu_size
    return Placement(
        gpu_ids=(),
        gpu_indices=(),
        library=None,
        n_gpu_layers=0,
        layers_per_gpu=(),
        vram_per_gpu=(),
        size=size,
        size_vram=0,
        full_offload=False,
        fits=size <= _system_free(inventory, used_system),
        within_headroom=True,
    )


def _system_free(inventory: Inventory, used_system: int) -> int:
    s = inventory.system
    return max(min(s.free, s.total - used_system), 0)


def place(
    needs: MemoryNeeds,
    inventory: Inventory,
    *,
    used_vram: Mapping[str, int] | None = None,
    used_system: int = 0,
    num_gpu: int = -1,
    spread: bool = False,
    overhead: int = 0,
) -> Placement:
    """Choose GPUs and ``n_gpu_layers`` for ``needs``.

    ``used_vram`` (per GPU id) and ``used_system`` are what the models already loaded hold, so the
    answer says whether this model fits beside them. ``num_gpu`` is Ollama's option: -1 automatic,
    0 CPU only, N at most N layers. ``spread`` skips the single-GPU attempt (OLLAMA_SCHED_SPREAD).
    """
    used = used_vram or {}
    if num_gpu == 0 or not inventory.gpus or needs.block_count == 0:
        return _cpu(needs, inventory, used_system)

    by_library: dict[str, list[GpuDevice]] = {}
    for g in inventory.gpus:
        by_library.setdefault(g.library, []).append(g)
    free = {g.id: _free(g, used) for g in inventory.gpus}
    library, gpus = max(by_library.items(), key=lambda kv: sum(free[g.id] for g in kv[1]))
    gpus = sorted(gpus, key=lambda g: free[g.id], reverse=True)

    # Every layer, or as many as num_gpu asks for.
    target = needs.block_count + 1 if num_gpu < 0 else min(num_gpu, needs.block_count + 1)
    chosen: _Layout | None = None
    if not spread:
        for g in gpus:
            lay = _layout(needs, [g], free, num_gpu, overhead)
            if lay.count >= target and sum(lay.vram) <= HEADROOM * free[g.id]:
                chosen = lay
                break
        for n in range(2, len(gpus) + 1):
            if chosen is not None:
                break
            lay = _layout(needs, gpus[:n], free, num_gpu, overhead)
            if lay.count >= target:
                chosen = lay
    if chosen is None:  # spread over every GPU of the library, as many layers as fit
        chosen = _layout(needs, gpus, free, num_gpu, overhead)
    if chosen.count == 0:
        return _cpu(needs, inventory, used_system)

    size_vram = sum(chosen.vram)
    size = size_vram if chosen.full else size_vram + chosen.overflow + needs.graph_partial
    gpu_fits = all(v <= free[g.id] for g, v in zip(chosen.gpus, chosen.vram, strict=False))
    return Placement(
        gpu_ids=tuple(g.id for g in chosen.gpus),
        gpu_indices=tuple(g.index for g in chosen.gpus),
        library=library,
        n_gpu_layers=chosen.count,
        layers_per_gpu=chosen.layers,
        vram_per_gpu=chosen.vram,
        size=size,
        size_vram=size_vram,
        full_offload=chosen.full,
        fits=gpu_fits and size - size_vram <= _system_free(inventory, used_system),
        within_headroom=size_vram <= HEADROOM * sum(free[g.id] for g in chosen.gpus),
    )

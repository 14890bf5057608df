"""What discovery reports: the GPUs of this machine and its system memory, as plain values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuDevice:
    """One accelerator. ``id`` is stable across calls (NVML UUID, DRM card name, ``metal``)."""

    id: str
    library: str  # "cuda", "rocm" or "metal"
    index: int  # the ordinal the runtime uses (CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES)
    name: str
    total_memory: int  # bytes
    free_memory: int  # bytes


@dataclass(frozen=True)
class SystemMemory:
    total: int  # bytes
    free: int  # bytes (available: free plus reclaimable caches)


@dataclass(frozen=True)
class Inventory:
    """A snapshot of the machine's memory. No GPUs means the CPU does the work."""

    gpus: tuple[GpuDevice, ...]
    system: SystemMemory

    @property
    def total_vram(self) -> int:
        return sum(g.total_memory for g in self.gpus)

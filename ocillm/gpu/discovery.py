"""The discovery seam: one method, ``inventory()``; the real machine and a fake beside it."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable

from ocillm.gpu.cpu import system_memory
from ocillm.gpu.metal import metal_gpus
from ocillm.gpu.nvml import nvidia_gpus
from ocillm.gpu.rocm import amd_gpus
from ocillm.gpu.types import GpuDevice, Inventory, SystemMemory

log = logging.getLogger(__name__)


class Discovery(ABC):
    """Reports the machine's GPUs and memory as they are now (called before each placement)."""

    @abstractmethod
    def inventory(self) -> Inventory: ...


class SystemDiscovery(Discovery):
    """NVML, then ROCm sysfs, then Metal; CPU only when none answers."""

    def inventory(self) -> Inventory:
        system = system_memory()
        gpus: list[GpuDevice] = nvidia_gpus() or amd_gpus() or metal_gpus(system)
        return Inventory(gpus=tuple(gpus), system=system)


class FakeDiscovery(Discovery):
    """A fixed inventory for tests. Assign ``gpus`` or ``system`` to change what it reports."""

    def __init__(
        self,
        gpus: Iterable[GpuDevice] = (),
        system: SystemMemory | None = None,
    ) -> None:
        self.gpus = tuple(gpus)
        self.system = system or SystemMemory(total=64 << 30, free=64 << 30)
        self.calls = 0

    def inventory(self) -> Inventory:
        self.calls += 1
        return Inventory(gpus=self.gpus, system=self.system)


def fake_gpu(
    index: int, total: int, free: int | None = None, library: str = "cuda", name: str = ""
) -> GpuDevice:
    """A GPU for fake inventories: ``fake_gpu(0, 8 << 30)``."""
    return GpuDevice(
        id=f"GPU-fake-{index}",
        library=library,
        index=index,
        name=name or f"Fake GPU {index}",
        total_memory=total,
        free_memory=total if free is None else free,
    )

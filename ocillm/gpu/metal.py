"""Apple silicon: one Metal device sharing unified memory (best effort, from ``sysctl``)."""

from __future__ import annotations

import platform
import subprocess

from ocillm.gpu.types import GpuDevice, SystemMemory

#: Metal lets a process wire about three quarters of unified memory for the GPU.
METAL_SHARE = 0.75


def _sysctl(name: str) -> int | None:
    try:
        out = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=True
        ).stdout
        return int(out.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def metal_gpus(system: SystemMemory) -> list[GpuDevice]:
    if platform.system() != "Darwin" or platform.machine() != "arm64":
        return []
    total = _sysctl("hw.memsize") or system.total
    if not total:
        return []
    budget = int(total * METAL_SHARE)
    return [
        GpuDevice(
            id="metal",
            library="metal",
            index=0,
            name="Apple Metal",
            total_memory=budget,
            free_memory=min(budget, system.free),
        )
    ]

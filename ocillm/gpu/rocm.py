"""AMD GPUs through the amdgpu driver's sysfs files (``mem_info_vram_total`` / ``_used``)."""

from __future__ import annotations

import re
from pathlib import Path

from ocillm.gpu.types import GpuDevice

DRM = Path("/sys/class/drm")
_CARD = re.compile(r"^card(\d+)$")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def amd_gpus(drm: Path = DRM) -> list[GpuDevice]:
    """Every ``cardN`` whose device reports VRAM. Integrated GPUs with no VRAM are skipped."""
    try:
        cards = sorted(
            (int(m.group(1)), p) for p in drm.iterdir() if (m := _CARD.match(p.name)) is not None
        )
    except OSError:
        return []
    devices: list[GpuDevice] = []
    for number, card in cards:
        device = card / "device"
        total = _read_int(device / "mem_info_vram_total")
        used = _read_int(device / "mem_info_vram_used")
        if not total or used is None:
            continue
        try:
            name = (device / "product_name").read_text().strip()
        except OSError:
            name = f"AMD GPU {card.name}"
        devices.append(
            GpuDevice(
                id=card.name,
                library="rocm",
                index=len(devices),
                name=name or f"AMD GPU card{number}",
                total_memory=total,
                free_memory=max(total - used, 0),
            )
        )
    return devices

"""The PROCESSOR column of ``ollama ps``: "100% GPU", "48%/52% CPU/GPU", "100% CPU"."""

from __future__ import annotations


def processor_string(size: int, size_vram: int) -> str:
    if size_vram == 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size or size == 0:
        return "Unknown"
    cpu = round((size - size_vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"

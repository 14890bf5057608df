"""System memory: ``/proc/meminfo`` on Linux, ``sysctl``/``os.sysconf`` elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

from ocillm.gpu.types import SystemMemory

MEMINFO = Path("/proc/meminfo")


def parse_meminfo(text: str) -> SystemMemory:
    """``MemTotal`` and ``MemAvailable`` (falling back to free + buffers + cached), in bytes."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            fields[key.strip()] = int(parts[0]) * scale
    total = fields.get("MemTotal", 0)
    if "MemAvailable" in fields:
        free = fields["MemAvailable"]
    else:
        free = sum(fields.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return SystemMemory(total=total, free=min(free, total) if total else free)


def system_memory(meminfo: Path = MEMINFO) -> SystemMemory:
    """The machine's RAM. Reads ``/proc/meminfo`` where it exists, else asks ``sysconf``."""
    try:
        return parse_meminfo(meminfo.read_text())
    except OSError:
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * page
        except (ValueError, OSError):
            free = total
        return SystemMemory(total=total, free=free)
    except (ValueError, OSError, AttributeError):
        return SystemMemory(total=0, free=0)

"""NVIDIA GPUs through NVML (``nvidia-ml-py``). No driver, no library, no GPUs: an empty list."""

from __future__ import annotations

import logging
from typing import Any

from ocillm.gpu.types import GpuDevice

log = logging.getLogger(__name__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvidia_gpus() -> list[GpuDevice]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception as err:  # pynvml.NVMLError: no driver or library on this machine
        log.debug("NVML unavailable: %s", err)
        return []
    try:
        devices: list[GpuDevice] = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            devices.append(
                GpuDevice(
                    id=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    library="cuda",
                    index=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    total_memory=int(memory.total),
                    free_memory=int(memory.free),
                )
            )
        return devices
    except Exception as err:
        log.warning("NVML query failed: %s", err)
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception as err:
            log.debug("nvmlShutdown: %s", err)

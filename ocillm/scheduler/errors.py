"""Errors the scheduler raises (the daemon maps ``http_status``; the texts are Ollama's)."""

from __future__ import annotations

from ocillm.errors import OcillmError


class QueueFull(OcillmError):
    """Too many requests are waiting. Ollama's text, two spaces included."""

    http_status = 503

    def __init__(self) -> None:
        super().__init__("server busy, please try again.  maximum pending requests exceeded")


class SchedulerClosed(OcillmError):
    """The scheduler is shutting down and takes no more requests."""

    http_status = 503

    def __init__(self) -> None:
        super().__init__("server is shutting down")


class InsufficientMemory(OcillmError):
    """The model does not fit this machine even with every other model unloaded."""

    http_status = 500

    def __init__(self, model: str, required: int, available: int, where: str = "system") -> None:
        self.model = model
        self.required = required
        self.available = available
        super().__init__(
            f"model requires more {where} memory ({_gib(required)}) than is available "
            f"({_gib(available)})"
        )


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"

"""Progress events, shaped like Ollama's pull/push/create progress (status, digest, total, completed).

Library code reports through a plain callable; the CLI renders events as rich bars, NDJSON or
nothing, and the daemon streams them to the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None
    host: str | None = None  # the registry (or mirror) that served this blob

    def wire(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


Reporter = Callable[[Event], None]


def silent(_event: Event) -> None:
    """A reporter that drops every event."""

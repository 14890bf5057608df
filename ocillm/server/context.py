"""What every request handler shares: settings, the store, the scheduler, the model catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ocillm.config import Settings
from ocillm.errors import OcillmError
from ocillm.gpu import Discovery
from ocillm.scheduler import Scheduler, parse_keep_alive
from ocillm.server.errors import ApiError
from ocillm.server.metrics import ServerMetrics
from ocillm.server.models import ModelCatalog
from ocillm.store import Store

GiB = 1 << 30


@dataclass
class ServerContext:
    settings: Settings
    store: Store
    scheduler: Scheduler
    catalog: ModelCatalog
    default_num_ctx: int
    metrics: ServerMetrics = field(default_factory=ServerMetrics)


def default_context_length(settings: Settings, discovery: Discovery) -> int:
    """``OCILLM_CONTEXT_LENGTH``, else Ollama's tiers by total VRAM (4096 on the CPU)."""
    if settings.context_length > 0:
        return settings.context_length
    gpus = discovery.inventory().gpus
    vram = sum(max(g.total_memory - settings.gpu_overhead, 0) for g in gpus)
    if vram >= 47 * GiB:
        return 262144
    if vram >= 23 * GiB:
        return 32768
    return 4096


def created_at() -> str:
    """RFC 3339 in UTC with a ``Z``, as Go's ``time.Time`` marshals."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def keep_alive(value: Any) -> float | None:
    """A request's ``keep_alive`` in seconds (a UsageError, hence 400, when malformed)."""
    try:
        return parse_keep_alive(value)
    except OcillmError as err:
        raise ApiError(400, f"keep_alive: {err}") from None

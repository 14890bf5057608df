"""How a transfer behaves: concurrency, chunking, ranges, retries, TLS and plain HTTP."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocillm.config import DEFAULT_REGISTRY_BACKOFF, DEFAULT_REGISTRY_RETRIES, Settings
from ocillm.registry.credentials import CredentialSources

if TYPE_CHECKING:
    from ocillm.registry.mirrors import Mirror

MiB = 1 << 20
REMOTE_RANGE_THRESHOLD = 256 * MiB


@dataclass(frozen=True)
class RetryNotice:
    """A request failed in a way worth retrying, and the client waits ``delay`` seconds first."""

    delay: float
    attempt: int
    """The attempt about to be made (2 for the first retry)."""
    attempts: int
    reason: str
    """What failed: ``127.0.0.1:5000: cannot connect (ConnectionError: Connection refused)``."""

    def __str__(self) -> str:
        where = f"attempt {self.attempt}/{self.attempts}"
        return f"retrying in {self.delay:.2f}s ({where}): {self.reason}"


@dataclass(frozen=True)
class TransferOptions:
    """Knobs shared by pull, push, login, save and load (the CLI flags map onto these).

    Build them with :meth:`from_settings` where there are settings (the CLI, the server): the
    plain constructor's defaults are the documented ones, with no credentials and no
    ``OCILLM_INSECURE_REGISTRIES``.
    """

    concurrency: int = 4
    """Blobs transferred at once, and Range GETs in flight for one large blob."""
    chunk_size: int | None = None
    """Upload in PATCH chunks of this many bytes; None uploads in one streamed PUT."""
    range_threshold: int | None = None
    """Blobs at least this large are fetched as parallel Range GETs. None: 256 MiB for remote
    registries, never for loopback ones (one stream is faster there: nothing limits a single
    connection, and the CPU is better spent hashing)."""
    range_segment: int = 64 * MiB
    """Bytes per Range GET of a large blob."""
    retries: int = DEFAULT_REGISTRY_RETRIES
    """Attempts per request on connection errors, 5xx and 429 (1 means no retry);
    ``OCILLM_REGISTRY_RETRIES`` (5)."""
    backoff: float = DEFAULT_REGISTRY_BACKOFF
    """First backoff in seconds; doubles per attempt (capped), with jitter;
    ``OCILLM_REGISTRY_BACKOFF`` (0.5)."""
    backoff_cap: float = 10.0
    on_retry: Callable[[RetryNotice], None] | None = None
    """Told before each wait to retry (the CLI prints it), so retries are never silent."""
    plain_http: bool = False
    """Use http:// for this registry (loopback hosts fall back to it on their own)."""
    ca_file: Path | None = None
    """A PEM bundle to verify TLS with instead of the system CAs."""
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    insecure_registries: tuple[str, ...] = ()
    """Registries tried over http:// when https:// fails (``OCILLM_INSECURE_REGISTRIES``)."""
    credentials: CredentialSources = field(default_factory=CredentialSources)
    """Where to look for credentials when a registry asks (none: anonymous)."""
    mirrors: Mapping[str, tuple[Mirror, ...]] = field(default_factory=dict)
    """Per registry, the mirrors a pull tries first, in order (``OCILLM_REGISTRY_MIRRORS``)."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> TransferOptions:
        """The options ``settings`` describe, with ``overrides`` (CLI flags) on top."""
        base: dict[str, Any] = {
            "retries": settings.registry_retries,
            "backoff": settings.registry_backoff,
            "insecure_registries": settings.insecure_registries,
            "credentials": CredentialSources.from_settings(settings),
            "mirrors": _mirrors(settings),
        }
        return cls(**{**base, **overrides})


def _mirrors(settings: Settings) -> dict[str, tuple[Mirror, ...]]:
    from ocillm.registry.mirrors import load_mirrors  # mirrors.py imports this module

    return load_mirrors(settings.registry_mirrors, settings.home / "registries.json")

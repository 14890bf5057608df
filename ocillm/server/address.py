"""``OCILLM_HOST`` as Ollama reads ``OLLAMA_HOST``: ``[scheme://]host[:port][/path]``.

Without a scheme: http, port 11434. ``http://`` without a port: 80; ``https://``: 443. An empty
host means 127.0.0.1; ``0.0.0.0`` binds every interface. IPv6 hosts are bracketed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ocillm.errors import UsageError

DEFAULT_PORT = 11434


@dataclass(frozen=True)
class Address:
    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def client_url(self) -> str:
        """Where a client on this machine reaches the server (0.0.0.0 → 127.0.0.1)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return Address(self.scheme, host, self.port, self.path).url


def parse_host(text: str) -> Address:
    raw = text.strip().strip("\"'")
    scheme, default_port = "http", DEFAULT_PORT
    if "://" in raw:
        scheme = raw.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise UsageError(f"OCILLM_HOST={text!r}: the scheme must be http or https")
        default_port = 443 if scheme == "https" else 80
    else:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as err:
        raise UsageError(f"OCILLM_HOST={text!r}: {err}") from None
    host = parts.hostname or "127.0.0.1"
    return Address(scheme, host, port or default_port, parts.path.rstrip("/"))

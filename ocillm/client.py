"""A small synchronous client of the daemon, for the CLI commands that need it (run, ps, stop).

It speaks the Ollama API at ``OCILLM_HOST`` (sending ``OCILLM_API_KEY`` as a bearer token when
set). Errors come back as :class:`DaemonError` with the server's own text; a daemon that is not
running is a :class:`DaemonUnreachable` that says how to start one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from ocillm.config import Settings
from ocillm.errors import OcillmError
from ocillm.server.address import parse_host


class DaemonError(OcillmError):
    """The daemon answered with an error (``status`` is its HTTP status; 200 mid-stream)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.http_status = status
        super().__init__(message)


class DaemonUnreachable(OcillmError):
    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"could not connect to ocillm serve at {url}: is it running? (start it with "
            "`ocillm serve`, or set OCILLM_HOST)"
        )


def _error_text(resp: httpx.Response) -> str:
    try:
        data = json.loads(resp.read())
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return str(data["error"])
    except ValueError:
        pass
    return resp.text.strip() or f"HTTP {resp.status_code}"


class DaemonClient:
    def __init__(self, settings: Settings, *, connect_timeout: float = 5.0) -> None:
        cfg = settings  # OCILLM_HOST and OCILLM_API_KEY, as the caller's edge read them
        self.url = parse_host(cfg.host).client_url
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(None, connect=connect_timeout),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            resp = self._http.request(method, path, json=body)
        except httpx.TransportError:
            raise DaemonUnreachable(self.url) from None
        if resp.status_code >= 400:
            raise DaemonError(resp.status_code, _error_text(resp))
        return resp

    def json(self, method: str, path: str, body: Any = None) -> Any:
        resp = self._send(method, path, body)
        return resp.json() if resp.content else {}

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST ``body`` and yield each NDJSON line; an ``{"error"}`` line raises."""
        try:
            with self._http.stream("POST", path, json=body) as resp:
                if resp.status_code >= 400:
                    raise DaemonError(resp.status_code, _error_text(resp))
                for line in resp.iter_lines():
                    if not line.strip():
                        continue
                    data = json.loads(line)
                    if "error" in data:
                        raise DaemonError(200, str(data["error"]))
                    yield data
        except httpx.TransportError:
            raise DaemonUnreachable(self.url) from None

    # --- the calls the CLI makes ----------------------------------------------------------------

    def heartbeat(self) -> None:
        self._send("HEAD", "/")

    def version(self) -> str:
        return str(self.json("GET", "/api/version").get("version", ""))

    def show(self, model: str) -> dict[str, Any]:
        data: dict[str, Any] = self.json("POST", "/api/show", {"model": model})
        return data

    def ps(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/api/ps").get("models") or [])

    def generate(self, **body: Any) -> Iterator[dict[str, Any]]:
        return self.stream("/api/generate", {k: v for k, v in body.items() if v is not None})

    def chat(self, **body: Any) -> Iterator[dict[str, Any]]:
        return self.stream("/api/chat", {k: v for k, v in body.items() if v is not None})

    def pull(self, model: str, *, insecure: bool = False) -> Iterator[dict[str, Any]]:
        return self.stream("/api/pull", {"model": model, "insecure": insecure})

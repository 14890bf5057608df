"""The daemon's front door, as Ollama's: CORS, the DNS-rebinding host check, and an optional key.

One pure ASGI middleware, in Ollama's order:

1. **CORS** (gin-contrib/cors as Ollama configures it). A request with an ``Origin`` that is not
   the server itself and not allowed gets 403. Allowed: ``OCILLM_ORIGINS`` (``*`` wildcards; a
   lone ``*`` allows all) plus Ollama's defaults (``http(s)://localhost``, ``127.0.0.1``,
   ``0.0.0.0``, each with any port, ``app://``, ``file://``, ``tauri://``, ``vscode-webview://``,
   ``vscode-file://``, browser extensions). A preflight ``OPTIONS`` gets 204 with the allowed
   methods and headers.
2. **Host check**, only when the server listens on a loopback address: the ``Host`` header must
   be a loopback, private or unspecified IP, an IP of this machine, ``localhost``, this
   machine's hostname, or a name under ``.localhost``, ``.local`` or ``.internal``; otherwise 403.
3. **API key** (an ocillm extension): when ``OCILLM_API_KEY`` is set, every request but a CORS
   preflight needs ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (what Anthropic's
   clients send); otherwise 401 ``unauthorized``, in the error shape of the API that owns the
   path (OpenAI's under ``/v1``, code ``invalid_api_key``). Without it, whatever key a client
   sends is ignored, as Ollama does.

:class:`BodyLimit` sits inside it: a body over ``OCILLM_MAX_REQUEST_BYTES`` gets 413 ``request
body too large`` before it is read whole (blob uploads are exempt).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import socket
from collections.abc import Iterable
from functools import lru_cache

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocillm.server.errors import error_body_for

DEFAULT_ORIGINS: tuple[str, ...] = (
    *(
        pattern
        for host in ("localhost", "127.0.0.1", "0.0.0.0")
        for pattern in (
            f"http://{host}",
            f"https://{host}",
            f"http://{host}:*",
            f"https://{host}:*",
        )
    ),
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)
BROWSER_EXTENSIONS = (
    "chrome-extension://",
    "safari-extension://",
    "moz-extension://",
    "ms-browser-extension://",
)
ALLOW_METHODS = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
ALLOW_HEADERS = ",".join(
    [
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        "OpenAI-Beta",
        "x-api-key",
        "anthropic-version",
        "anthropic-beta",
        "x-stainless-arch",
        "x-stainless-async",
        "x-stainless-custom-poll-interval",
        "x-stainless-helper-method",
        "x-stainless-lang",
        "x-stainless-os",
        "x-stainless-package-version",
        "x-stainless-poll-helper",
        "x-stainless-retry-count",
        "x-stainless-runtime",
        "x-stainless-runtime-version",
        "x-stainless-timeout",
    ]
)
LOCAL_SUFFIXES = (".localhost", ".local", ".internal")


def _pattern(origin: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in origin.split("*")) + "$")


def is_loopback_bind(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def split_host(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:80`` → ``::1``, ``a:80`` → ``a``)."""
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else header
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


@lru_cache(maxsize=1)
def _local_ips() -> frozenset[str]:
    ips: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            ips.add(str(info[4][0]))
    except OSError:
        pass
    return frozenset(ips)


def allowed_host(host: str) -> tuple[bool, bool]:
    """(allowed, by name): Ollama's ``allowedHostsMiddleware`` rules for a ``Host`` value."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        ok = ip.is_loopback or ip.is_private or ip.is_unspecified or str(ip) in _local_ips()
        return ok, False
    name = host.lower()
    if name in ("", "localhost") or name == socket.gethostname().lower():
        return True, True
    return name.endswith(LOCAL_SUFFIXES), True


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        origins: Iterable[str] = (),
        loopback: bool = True,
        api_key: str | None = None,
    ) -> None:
        self.app = app
        extra = [o.strip() for o in origins if o.strip()]
        self.allow_all = "*" in extra
        self.patterns = [_pattern(o) for o in (*extra, *DEFAULT_ORIGINS) if o != "*"]
        self.loopback = loopback
        self.api_key = api_key

    def key_given(self, headers: dict[str, str]) -> bool:
        """``Authorization: Bearer <key>``, or Anthropic's ``x-api-key: <key>``."""
        key = (self.api_key or "").encode()
        bearer = hmac.compare_digest(headers.get("authorization", "").encode(), b"Bearer " + key)
        return bearer or hmac.compare_digest(headers.get("x-api-key", "").encode(), key)

    def origin_allowed(self, origin: str) -> bool:
        if self.allow_all or origin.startswith(BROWSER_EXTENSIONS):
            return True
        return any(p.match(origin) for p in self.patterns)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        host_header = headers.get("host", "")
        origin = headers.get("origin", "")
        cors_headers: list[tuple[bytes, bytes]] = []
        if origin and origin not in (f"http://{host_header}", f"https://{host_header}"):
            if not self.origin_allowed(origin):
                await _status(send, 403)
                return
            allow = "*" if self.allow_all else origin
            cors_headers = [(b"access-control-allow-origin", allow.encode("latin-1"))]
            if not self.allow_all:
                cors_headers.append((b"vary", b"Origin"))
            if method == "OPTIONS":
                cors_headers += [
                    (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                    (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                ]
                await _status(send, 204, cors_headers)
                return
        if self.loopback:
            ok, by_name = allowed_host(split_host(host_header))
            if not ok:
                await _status(send, 403, cors_headers)
                return
            if by_name and method == "OPTIONS":
                await _status(send, 204, cors_headers)
                return
        # /v2/ checks the key itself: Bearer or Basic (registry clients), with OCI error bodies.
        path = scope.get("path", "")
        if (
            self.api_key
            and method != "OPTIONS"
            and not _is_registry(path)
            and not self.key_given(headers)
        ):
            body = error_body_for(path, 401, "unauthorized", code="invalid_api_key")
            await _status(send, 401, cors_headers, body)
            return
        if cors_headers:
            send = _adding_headers(send, cors_headers)
        await self.app(scope, receive, send)


def _is_registry(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def _adding_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


async def _status(
    send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
) -> None:
    head = list(headers or [])
    if body:
        head.append((b"content-type", b"application/json; charset=utf-8"))
    head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


#: Bodies the limit does not apply to: blob uploads stream to the store, gigabytes by design.
UNLIMITED_PREFIXES = ("/api/blobs/", "/v2/")
TOO_LARGE = "request body too large"


class BodyLimit:
    """413 for a request body over ``limit`` bytes (``OCILLM_MAX_REQUEST_BYTES``), before it is
    read whole: at once from ``Content-Length``, else by counting the bytes as they arrive. The
    app then sees the client gone, and nothing it answers is sent."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or self.limit <= 0 or path.startswith(UNLIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    break  # the server refuses a malformed length itself
                if declared > self.limit:
                    await _status(send, 413, body=_too_large(path))
                    return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await _status(send, 413, body=_too_large(path))
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)


def _too_large(path: str) -> bytes:
    return error_body_for(path, 413, TOO_LARGE)

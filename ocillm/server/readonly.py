"""``serve --read-only``: serve an image volume or a shared PVC, and refuse every write route.

A store is served read-only when asked (``--read-only``, ``OCILLM_READ_ONLY``), when several
stores are served at once, or when the store's directory cannot be written (a read-only mount).
Nothing is written under it then; the routes that would write answer 403 before any work.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ocillm.config import Settings
from ocillm.server.errors import error_body
from ocillm.store import Store
from ocillm.store.readonly import open_read_only

# (method, path or path prefix ending in "/"): every route that changes the store.
WRITE_ROUTES = (
    ("POST", "/api/pull"),
    ("POST", "/api/create"),
    ("DELETE", "/api/delete"),
    ("POST", "/api/copy"),
    ("POST", "/api/push"),  # it holds the store's write lock while it converts and reads
    ("POST", "/api/blobs/"),
)


def is_read_only(cfg: Settings) -> bool:
    if cfg.read_only or cfg.extra_models:
        return True
    # A read-only mount answers EROFS to access(W_OK), even for root.
    return cfg.models.is_dir() and not os.access(cfg.models, os.W_OK)


def open_served_store(cfg: Settings, read_only: bool) -> Store:
    if not read_only:
        return Store.open(cfg.models, default_registry=cfg.default_registry)
    roots = [cfg.models, *cfg.extra_models]
    return open_read_only(roots, default_registry=cfg.default_registry)


def is_write(method: str, path: str) -> bool:
    for m, route in WRITE_ROUTES:
        if method == m and (path == route or (route.endswith("/") and path.startswith(route))):
            return True
    return False


class RefuseWrites:
    """ASGI middleware: 403 ``{"error": ...}`` for :data:`WRITE_ROUTES` on a read-only store."""

    def __init__(self, app: ASGIApp, *, message: str) -> None:
        self.app = app
        self.body = error_body(message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_write(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        headers: list[Any] = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(self.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def refusal(cfg: Settings) -> str:
    stores = ", ".join(str(p) for p in (cfg.models, *cfg.extra_models))
    return (
        f"the model store is read-only ({stores}): this server does not pull, create, copy, "
        "push or delete models; change the image volume or the store it was built from"
    )

"""The app factory, its lifespan (scheduler up, every runner unloaded at exit), and ``serve``."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ocillm import __version__
from ocillm.config import Settings
from ocillm.errors import OcillmError
from ocillm.gc_pauses import freeze_startup_objects
from ocillm.gpu import Discovery, SystemDiscovery
from ocillm.scheduler import ProcessRunnerFactory, RunnerFactory, Scheduler
from ocillm.server import openapi
from ocillm.server.address import parse_host
from ocillm.server.apis import ROUTERS as api_routers
from ocillm.server.context import ServerContext, default_context_length
from ocillm.server.errors import describe_validation, error_for, status_and_message
from ocillm.server.metrics import CountRequests, ServerMetrics, metrics_endpoint
from ocillm.server.middleware import BodyLimit, Guard, is_loopback_bind
from ocillm.server.models import ModelCatalog
from ocillm.server.readonly import RefuseWrites, is_read_only, open_served_store, refusal
from ocillm.server.routes.ollama import router

log = logging.getLogger("ocillm.server")


def create_app(
    settings: Settings | None = None,
    *,
    discovery: Discovery | None = None,
    factory: RunnerFactory | None = None,
) -> FastAPI:
    """The daemon's ASGI app. ``discovery``/``factory`` default to the machine and real runners."""
    cfg = settings or Settings.from_env()
    disc = discovery or SystemDiscovery()
    runners = factory or ProcessRunnerFactory(
        unix_socket=cfg.runner_unix_socket, spare=cfg.runner_spare, repack=cfg.llama_repack
    )

    read_only = is_read_only(cfg)
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = Scheduler.from_settings(cfg, disc, runners, events=metrics)
        metrics.scheduler = scheduler
        await runners.prestart()
        store = open_served_store(cfg, read_only)
        app.state.ctx = ServerContext(
            settings=cfg,
            store=store,
            scheduler=scheduler,
            catalog=ModelCatalog(store, policy=cfg.policy_file),
            default_num_ctx=default_context_length(cfg, disc),
            metrics=metrics,
        )
        freeze_startup_objects()  # imports and app: short full collections while streaming
        try:
            yield
        finally:
            log.info("shutting down: unloading every model")
            await scheduler.shutdown()

    app = FastAPI(
        title="ocillm",
        version=__version__,
        lifespan=lifespan,
        # Served (behind OCILLM_API_KEY like every route, see Guard) with the wire models'
        # schemas: ocillm.server.openapi.
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.metrics = metrics
    if cfg.metrics:  # OCILLM_METRICS=off: no route, so 404 as for any unknown path
        app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.include_router(router)
    for api_router in api_routers:  # OpenAI, Anthropic, Responses: ocillm.server.apis
        app.include_router(api_router)
    openapi.install(app, [router, *api_routers])
    from ocillm.server.registry_api import registry_router  # /v2/: the store as a registry

    app.include_router(registry_router)
    _handlers(app)
    if read_only:
        app.add_middleware(RefuseWrites, message=refusal(cfg))
    # Inside Guard: a request without the key is refused before its body is counted.
    app.add_middleware(BodyLimit, limit=cfg.max_request_bytes)
    address = parse_host(cfg.host)
    app.add_middleware(
        Guard,
        origins=cfg.origins,
        loopback=is_loopback_bind(address.host),
        api_key=cfg.api_key,
    )
    if cfg.metrics:  # outermost: refusals (401, 403, 413) are counted too
        app.add_middleware(CountRequests, metrics=metrics, routes=lambda: app.router.routes)
    return app


def _error(request: Request, status: int, message: str) -> JSONResponse:
    """Ollama's ``{"error": "..."}``, or the error object of the API that owns the path."""
    return JSONResponse(error_for(request.url.path, status, message), status_code=status)


def _handlers(app: FastAPI) -> None:
    async def ocillm_error(request: Request, exc: Exception) -> Response:
        status, message = status_and_message(exc)
        return _error(request, status, message)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _error(request, 400, describe_validation(list(exc.errors())))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return PlainTextResponse("404 page not found", status_code=404)
        if exc.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405)
        return _error(request, exc.status_code, str(exc.detail))

    app.add_exception_handler(OcillmError, ocillm_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


def serve(settings: Settings | None = None) -> None:
    """Run the daemon on ``OCILLM_HOST`` until SIGINT/SIGTERM, then unload every runner."""
    import uvicorn

    cfg = settings or Settings.from_env()
    address = parse_host(cfg.host)
    logging.basicConfig(
        level=logging.DEBUG if cfg.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not cfg.debug:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per runner call
    app = create_app(cfg)
    config = uvicorn.Config(
        app,
        host=address.host,
        port=address.port,
        log_level="debug" if cfg.debug else "info",
        access_log=cfg.debug,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    log.info("ocillm %s listening on %s (models in %s)", __version__, address.url, cfg.models)
    if is_read_only(cfg):
        log.info("the store is read-only: pull, create, copy, push and delete answer 403")

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # uvicorn re-raises the signal after its graceful shutdown; a daemon that stopped
            # cleanly (every runner unloaded) exits 0 instead.
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    _Server(config).run()

"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

The work is :mod:`.serving`; every error on these paths, validation and a missing model
included, is Anthropic's ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ocillm.server.apis.anthropic import serving
from ocillm.server.apis.anthropic.protocol import CountTokensRequest, MessagesRequest, error
from ocillm.server.apis.shared.sse import Dialect, EventStream
from ocillm.server.context import ServerContext
from ocillm.server.routes.ollama import body, context

router = APIRouter(prefix="/v1/messages")
#: ``event: <type>`` and ``data:`` per event; no terminator; an error is an ``error`` event.
DIALECT = Dialect(error=lambda status, message: error(status, message), named=True)


@router.post("")
async def messages(
    req: MessagesRequest = Depends(body(MessagesRequest)),
    ctx: ServerContext = Depends(context),
) -> EventStream:
    return EventStream(serving.messages(ctx, req), stream=req.stream, dialect=DIALECT)


@router.post("/count_tokens")
async def count_tokens(
    req: CountTokensRequest = Depends(body(CountTokensRequest)),
    ctx: ServerContext = Depends(context),
) -> JSONResponse:
    return JSONResponse(await serving.count_tokens(ctx, req))

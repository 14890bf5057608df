"""The OpenAI-compatible routes (reference/ollama.md §1.13): validate, translate, respond.

The work is :mod:`.serving`; errors under ``/v1`` take OpenAI's shape
(``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ocillm.server.apis.openai import serving
from ocillm.server.apis.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    error,
)
from ocillm.server.apis.shared.sse import Dialect, EventStream
from ocillm.server.context import ServerContext
from ocillm.server.routes.ollama import body, context

router = APIRouter(prefix="/v1")
#: ``data: {json}`` events, ``data: [DONE]`` at the end, errors as ``{"error": {...}}``.
DIALECT = Dialect(error=error, end=b"data: [DONE]\n\n")


@router.post("/chat/completions")
async def chat_completions(
    req: ChatCompletionRequest = Depends(body(ChatCompletionRequest)),
    ctx: ServerContext = Depends(context),
) -> EventStream:
    return EventStream(serving.chat(ctx, req), stream=bool(req.stream), dialect=DIALECT)


@router.post("/completions")
async def completions(
    req: CompletionRequest = Depends(body(CompletionRequest)),
    ctx: ServerContext = Depends(context),
) -> EventStream:
    return EventStream(serving.completions(ctx, req), stream=bool(req.stream), dialect=DIALECT)


@router.post("/embeddings")
async def embeddings(
    req: EmbeddingRequest = Depends(body(EmbeddingRequest)),
    ctx: ServerContext = Depends(context),
) -> EventStream:
    return EventStream(serving.embeddings(ctx, req), stream=False, dialect=DIALECT)


@router.get("/models")
async def list_models(ctx: ServerContext = Depends(context)) -> JSONResponse:
    return JSONResponse(await serving.list_models(ctx))


@router.get("/models/{model:path}")
async def retrieve_model(model: str, ctx: ServerContext = Depends(context)) -> JSONResponse:
    return JSONResponse(await serving.retrieve_model(ctx, model))

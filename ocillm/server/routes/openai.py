"""The OpenAI-compatible routes (reference/ollama.md §1.13): validate, translate, respond.

The work is :mod:`ocillm.server.openai_compat`; errors under ``/v1`` take OpenAI's shape
(``{"error": {"message", "type", "param", "code"}}``, see :mod:`ocillm.server.app`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ocillm.server import openai_compat as compat
from ocillm.server.context import ServerContext
from ocillm.server.routes.ollama import body, context
from ocillm.server.schemas.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
)
from ocillm.server.sse import OpenAIResponse

router = APIRouter(prefix="/v1")


@router.post("/chat/completions")
async def chat_completions(
    req: ChatCompletionRequest = Depends(body(ChatCompletionRequest)),
    ctx: ServerContext = Depends(context),
) -> OpenAIResponse:
    return OpenAIResponse(compat.chat(ctx, req), stream=bool(req.stream))


@router.post("/completions")
async def completions(
    req: CompletionRequest = Depends(body(CompletionRequest)),
    ctx: ServerContext = Depends(context),
) -> OpenAIResponse:
    return OpenAIResponse(compat.completions(ctx, req), stream=bool(req.stream))


@router.post("/embeddings")
async def embeddings(
    req: EmbeddingRequest = Depends(body(EmbeddingRequest)),
    ctx: ServerContext = Depends(context),
) -> OpenAIResponse:
    return OpenAIResponse(compat.embeddings(ctx, req), stream=False)


@router.get("/models")
async def list_models(ctx: ServerContext = Depends(context)) -> JSONResponse:
    return JSONResponse(await compat.list_models(ctx))


@router.get("/models/{model:path}")
async def retrieve_model(model: str, ctx: ServerContext = Depends(context)) -> JSONResponse:
    return JSONResponse(await compat.retrieve_model(ctx, model))

"""The Ollama API routes (reference/ollama.md §1): each validates, calls the work, responds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ValidationError

from ocillm import __version__
from ocillm.server import embed as embed_work
from ocillm.server import generate as generate_work
from ocillm.server import manage
from ocillm.server.context import ServerContext
from ocillm.server.errors import ApiError, validation_error
from ocillm.server.schemas.ollama import (
    ChatRequest,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    PullRequest,
    PushRequest,
    ShowRequest,
)
from ocillm.server.streaming import Chunk, NDJSONResponse

router = APIRouter()
T = TypeVar("T", bound=BaseModel)
#: Deeper bodies are refused before anything recursive (pydantic, schema converters, templates)
#: walks them; no real request nests a tenth as deep.
MAX_JSON_DEPTH = 100
CHAT_ROLES = ("system", "user", "assistant", "tool")


def _too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers more than ``limit`` deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def body(model: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A JSON body whatever its Content-Type (``curl -d`` sends a form type), as Go decodes it."""

    async def parse(request: Request) -> T:
        raw = await request.body()
        if not raw.strip():
            raise ApiError(400, "missing request body")
        deep = ApiError(400, f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = json.loads(raw)
        except RecursionError:
            raise deep from None
        except ValueError as err:
            raise ApiError(400, f"invalid JSON: {err}") from None
        if isinstance(data, (dict, list)) and _too_deep(data, MAX_JSON_DEPTH):
            raise deep
        if not isinstance(data, dict):
            raise ApiError(400, "invalid request body: expected a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as err:
            raise validation_error(err) from None

    # Read by ocillm.server.openapi: the request body this dependency parses.
    parse.__dict__["body_model"] = model
    return parse


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


async def _one(work: Coroutine[Any, Any, Chunk]) -> AsyncIterator[Chunk]:
    yield await work


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


@router.get("/")
@router.head("/")
async def root() -> PlainTextResponse:
    return PlainTextResponse("Ollama is running")


@router.get("/api/version")
@router.head("/api/version")
async def version() -> JSONResponse:
    return _json({"version": __version__})


@router.post("/api/generate")
async def generate(
    req: GenerateRequest = Depends(body(GenerateRequest)),
    ctx: ServerContext = Depends(context),
) -> NDJSONResponse:
    stream = req.stream is not False
    chunks = generate_work.generate(ctx, req)
    return NDJSONResponse(chunks, stream=stream, merge=generate_work.merge_generate)


@router.post("/api/chat")
async def chat(
    req: ChatRequest = Depends(body(ChatRequest)), ctx: ServerContext = Depends(context)
) -> NDJSONResponse:
    for message in req.messages:
        if message.role not in CHAT_ROLES:
            raise ApiError(
                400,
                f'invalid role "{message.role}": must be one of "system", "user", '
                '"assistant" or "tool"',
            )
    chunks = generate_work.chat(ctx, req)
    return NDJSONResponse(chunks, stream=req.stream is not False, merge=generate_work.merge_chat)


@router.post("/api/embed")
async def embed(
    req: EmbedRequest = Depends(body(EmbedRequest)), ctx: ServerContext = Depends(context)
) -> NDJSONResponse:
    return NDJSONResponse(_one(embed_work.embed(ctx, req)), stream=False)


@router.post("/api/embeddings")
async def embeddings(
    req: EmbeddingsRequest = Depends(body(EmbeddingsRequest)),
    ctx: ServerContext = Depends(context),
) -> NDJSONResponse:
    return NDJSONResponse(_one(embed_work.embeddings(ctx, req)), stream=False)


@router.get("/api/tags")
@router.head("/api/tags")
async def tags(ctx: ServerContext = Depends(context)) -> JSONResponse:
    return _json(await asyncio.to_thread(manage.tags, ctx))


@router.post("/api/show")
async def show(
    req: ShowRequest = Depends(body(ShowRequest)), ctx: ServerContext = Depends(context)
) -> JSONResponse:
    return _json(await asyncio.to_thread(manage.show_model, ctx, req))


@router.get("/api/ps")
async def ps(ctx: ServerContext = Depends(context)) -> JSONResponse:
    return _json(manage.ps(ctx))


@router.post("/api/copy")
async def copy(
    req: CopyRequest = Depends(body(CopyRequest)), ctx: ServerContext = Depends(context)
) -> Response:
    await asyncio.to_thread(manage.copy, ctx, req)
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(
    req: DeleteRequest = Depends(body(DeleteRequest)), ctx: ServerContext = Depends(context)
) -> Response:
    await manage.delete(ctx, req)
    return Response(status_code=200)


@router.post("/api/create")
async def create(
    req: CreateRequest = Depends(body(CreateRequest)), ctx: ServerContext = Depends(context)
) -> NDJSONResponse:
    chunks = await asyncio.to_thread(manage.create, ctx, req)
    return NDJSONResponse(chunks, stream=req.stream is not False)


@router.post("/api/pull")
async def pull(
    req: PullRequest = Depends(body(PullRequest)), ctx: ServerContext = Depends(context)
) -> NDJSONResponse:
    return NDJSONResponse(manage.pull(ctx, req), stream=req.stream is not False)


@router.post("/api/push")
async def push(
    req: PushRequest = Depends(body(PushRequest)), ctx: ServerContext = Depends(context)
) -> NDJSONResponse:
    chunks = await asyncio.to_thread(manage.push, ctx, req)
    return NDJSONResponse(chunks, stream=req.stream is not False)


@router.head("/api/blobs/{digest}")
async def head_blob(digest: str, ctx: ServerContext = Depends(context)) -> Response:
    if not await asyncio.to_thread(manage.has_blob, ctx, digest):
        raise ApiError(404, f'blob "{digest}" not found')
    return Response(status_code=200)


@router.post("/api/blobs/{digest}")
async def post_blob(
    digest: str, request: Request, ctx: ServerContext = Depends(context)
) -> Response:
    created = await manage.put_blob(ctx, digest, request.stream())
    return Response(status_code=201 if created else 200)

"""``POST /api/rerank`` and ``POST /v1/rerank`` (llama-server's, Jina's and Cohere's shape).

Errors are Ollama's ``{"error": ...}`` on ``/api``, OpenAI's error object on ``/v1`` (the app's
handlers choose by path).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ocillm.server.apis.rerank import serving
from ocillm.server.apis.rerank.protocol import RerankRequest, RerankResponse
from ocillm.server.context import ServerContext
from ocillm.server.routes.ollama import body, context

router = APIRouter()


@router.post("/api/rerank", response_model=RerankResponse)
@router.post("/v1/rerank", response_model=RerankResponse)
async def rerank(
    req: RerankRequest = Depends(body(RerankRequest)), ctx: ServerContext = Depends(context)
) -> JSONResponse:
    return JSONResponse(await serving.rerank(ctx, req))

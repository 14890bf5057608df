"""OpenAI's Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``.

The work is :mod:`.serving`; errors take OpenAI's shape. Stored responses live in the app's
:class:`~.store.ResponseStore` (memory only, bounded in time and number).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ocillm.server.apis.openai.protocol import error
from ocillm.server.apis.responses import serving
from ocillm.server.apis.responses.protocol import ResponsesRequest
from ocillm.server.apis.responses.store import ResponseStore
from ocillm.server.apis.shared.sse import Dialect, EventStream
from ocillm.server.context import ServerContext
from ocillm.server.routes.ollama import body, context

router = APIRouter(prefix="/v1/responses")
#: ``event: <type>`` and ``data:`` per event, no terminator (OpenAI sends no ``[DONE]`` here).
DIALECT = Dialect(error=lambda status, message: error(status, message), named=True)


def responses_store(request: Request) -> ResponseStore:
    """The app's store of responses, made on first use."""
    state = request.app.state
    if not hasattr(state, "responses"):
        state.responses = ResponseStore()
    found: ResponseStore = state.responses
    return found


@router.post("")
async def create(
    req: ResponsesRequest = Depends(body(ResponsesRequest)),
    ctx: ServerContext = Depends(context),
    store: ResponseStore = Depends(responses_store),
) -> EventStream:
    return EventStream(serving.create(ctx, store, req), stream=req.stream, dialect=DIALECT)


@router.get("/{response_id}")
async def retrieve(
    response_id: str, store: ResponseStore = Depends(responses_store)
) -> JSONResponse:
    return JSONResponse(store.get(response_id).response)


@router.delete("/{response_id}")
async def delete(response_id: str, store: ResponseStore = Depends(responses_store)) -> JSONResponse:
    store.delete(response_id)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})

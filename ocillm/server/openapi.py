"""The served OpenAPI document: FastAPI's paths, with bodies and answers from the wire models.

Routes parse their bodies by hand (:func:`ocillm.server.routes.ollama.body`), so that Ollama's
error texts stay as they are; FastAPI therefore sees no body parameter. This module puts the
pydantic models back into the document: the request body each route's ``body(Model)`` parses,
the answers listed in :data:`ANSWERS`, Ollama's (or OpenAI's) error object for 400 and 404, and
one ``operationId`` per method and path (FastAPI gives GET and HEAD of one route the same).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ocillm.server.apis.anthropic import protocol as an
from ocillm.server.apis.openai import protocol as oa
from ocillm.server.errors import shape_for
from ocillm.server.schemas import ollama as o

JSON = "application/json"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
#: The 200 answer of each operation: its model and the media types it comes as. Streaming
#: routes send the same object as NDJSON lines (or, merged, as one JSON object).
ANSWERS: dict[tuple[str, str], tuple[type[BaseModel], tuple[str, ...]]] = {
    ("post", "/api/generate"): (o.GenerateResponse, (JSON, NDJSON)),
    ("post", "/api/chat"): (o.ChatResponse, (JSON, NDJSON)),
    ("post", "/api/embed"): (o.EmbedResponse, (JSON,)),
    ("post", "/api/embeddings"): (o.EmbeddingResponse, (JSON,)),
    ("get", "/api/tags"): (o.ListResponse, (JSON,)),
    ("get", "/api/ps"): (o.ProcessResponse, (JSON,)),
    ("get", "/api/version"): (o.VersionResponse, (JSON,)),
    ("post", "/api/create"): (o.ProgressResponse, (JSON, NDJSON)),
    ("post", "/api/pull"): (o.ProgressResponse, (JSON, NDJSON)),
    ("post", "/api/push"): (o.ProgressResponse, (JSON, NDJSON)),
    ("post", "/v1/chat/completions"): (oa.ChatCompletion, (JSON,)),
    ("post", "/v1/completions"): (oa.Completion, (JSON,)),
    ("post", "/v1/embeddings"): (oa.EmbeddingList, (JSON,)),
    ("get", "/v1/models"): (oa.ModelList, (JSON,)),
    ("get", "/v1/models/{model}"): (oa.ModelObject, (JSON,)),
    ("post", "/v1/messages"): (an.AnthropicMessage, (JSON,)),
    ("post", "/v1/messages/count_tokens"): (an.TokenCount, (JSON,)),
}
#: Raw bodies (``POST /api/blobs/:digest``): bytes, not JSON.
RAW_BODIES = {("post", "/api/blobs/{digest}")}


def _operation_id(method: str, path: str) -> str:
    slug = "_".join(p for p in re.split(r"[^A-Za-z0-9]+", path) if p)
    return f"{method}_{slug or 'root'}"


def _body_model(route: APIRoute) -> type[BaseModel] | None:
    for dep in route.dependant.dependencies:
        model = getattr(dep.call, "body_model", None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model
    return None


def build_openapi(app: FastAPI, routers: Sequence[APIRouter]) -> dict[str, Any]:
    """The document for ``app``, whose operations come from ``routers`` (walked for their
    body models: the app's own route list nests included routers in FastAPI-private types)."""
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(o.ErrorResponse, "serialization")]
    # (operation, where in it, model, mode, media types): $refs filled in once every schema
    # is made (one models_json_schema call, so shared sub-models get one name).
    places: list[tuple[dict[str, Any], str, type[BaseModel], JsonSchemaMode, tuple[str, ...]]]
    places = []
    for route in (r for router in routers for r in router.routes):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        item = doc["paths"][route.path_format]
        model = _body_model(route)
        for method in sorted(m.lower() for m in route.methods or ()):
            op = item[method]
            op["operationId"] = _operation_id(method, route.path_format)
            responses = op.setdefault("responses", {})
            responses.pop("422", None)  # validation failures are 400s here
            if model is not None:
                wanted.append((model, "validation"))
                places.append((op, "request", model, "validation", (JSON,)))
            elif (method, route.path_format) in RAW_BODIES:
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                }
            answer = ANSWERS.get((method, route.path_format))
            if answer is not None and method != "head":
                wanted.append((answer[0], "serialization"))
                places.append((op, "answer", answer[0], "serialization", answer[1]))
            shape = shape_for(route.path_format)
            error = o.ErrorResponse if shape is None else shape.model
            wanted.append((error, "serialization"))
            places.append((op, "error", error, "serialization", (JSON,)))
    refs, defs = models_json_schema(
        list(dict.fromkeys(wanted)), ref_template="#/components/schemas/{model}"
    )
    for op, where, model, mode, media in places:
        content = {m: {"schema": refs[(model, mode)]} for m in media}
        if where == "request":
            op["requestBody"] = {"required": True, "content": content}
        elif where == "answer":
            op["responses"]["200"] = {"description": "OK", "content": content}
        else:
            op["responses"]["400"] = {"description": "Bad request", "content": content}
            op["responses"]["404"] = {"description": "Not found", "content": content}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(defs.get("$defs", {}))
    if not schemas:
        doc.pop("components")
    return doc


def install(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Serve :func:`build_openapi`'s document at ``app.openapi_url`` (made once, then kept)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, routers)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""The APIs ``ocillm serve`` speaks besides Ollama's own, one folder each (as vLLM's
``entrypoints/openai/<endpoint>/``): ``protocol.py`` mirrors the wire format, ``translate.py``
turns requests into native ones through :mod:`.shared.translate`, ``serving.py`` runs them and
writes the answers in the API's shape, ``routes.py`` holds the thin routes. Each registers the
error shape of the paths it owns. A new API is a new folder listed here.
"""

from __future__ import annotations

from fastapi import APIRouter

from ocillm.server.apis import anthropic, openai
from ocillm.server.apis.anthropic.routes import router as anthropic_router
from ocillm.server.apis.openai.routes import router as openai_router
from ocillm.server.apis.rerank.routes import router as rerank_router
from ocillm.server.apis.responses.routes import router as responses_router
from ocillm.server.errors import register_error_shape

#: Every API's router, in the order they are mounted.
ROUTERS: list[APIRouter] = [openai_router, anthropic_router, responses_router, rerank_router]

for shape in (openai.ERRORS, anthropic.ERRORS):
    register_error_shape(shape)

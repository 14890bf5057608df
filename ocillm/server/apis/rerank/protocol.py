"""``/api/rerank`` and ``/v1/rerank`` bodies: the shape llama-server, Jina and Cohere clients send.

Unknown fields (Cohere's ``rank_fields``, ``max_chunks_per_doc``, ...) are ignored. ``options``,
``keep_alive`` and ``priority`` are ocillm's, as on ``/api/embed``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RerankDocument(_Body):
    """A document given as an object (Jina, Cohere): only its ``text`` is ranked."""

    text: str


class RerankRequest(_Body):
    model: str = ""
    query: str
    #: Strings, or objects with ``text``; at least one.
    documents: list[str | RerankDocument]
    #: The best ``top_n`` results only (default: every document).
    top_n: int | None = None
    #: Each result carries its document as ``{"text": ...}``.
    return_documents: bool = False
    #: Cut a document that does not fit beside the query (default), instead of a 400.
    truncate: bool | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | float | int | None = None
    priority: int = 0


class RerankResult(_Body):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankUsage(_Body):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(_Body):
    model: str
    object: str = "list"
    results: list[RerankResult]
    usage: RerankUsage

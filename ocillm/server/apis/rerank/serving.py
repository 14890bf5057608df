"""``/api/rerank`` and ``/v1/rerank``: one relevance score per document, best first.

A reranker is a GGUF whose pooling type is rank (bge-reranker, Jina's, Qwen3-Reranker, ...). It
is loaded as an embedding model is (embeddings on, its own runner), and the runner scores every
(query, document) pair in llama.cpp (:mod:`ocillm.runner.rerank`). The score is the model's own
output, as llama-server returns it (a logit for BERT-style cross-encoders), not squashed to 0..1.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ocillm.runner import RerankRequest as RunnerRerank
from ocillm.server.apis.rerank.protocol import RerankDocument, RerankRequest
from ocillm.server.context import ServerContext, keep_alive
from ocillm.server.errors import ApiError
from ocillm.server.models import ServedModel
from ocillm.server.options import Options

#: llama.cpp's ``LLAMA_POOLING_TYPE_RANK``, as a GGUF's ``<arch>.pooling_type`` stores it.
POOLING_RANK = 4


def is_reranker(model: ServedModel) -> bool:
    return model.info.pooling_type == POOLING_RANK


def _texts(documents: list[str | RerankDocument]) -> list[str]:
    return [d if isinstance(d, str) else d.text for d in documents]


async def rerank(ctx: ServerContext, req: RerankRequest) -> dict[str, Any]:
    if not req.documents:
        raise ApiError(400, 'documents must be a non-empty list of strings or {"text": ...}')
    if req.top_n is not None and req.top_n < 1:
        raise ApiError(400, "top_n must be at least 1")
    model = await asyncio.to_thread(ctx.catalog.open, req.model)
    if not is_reranker(model):
        raise ApiError(
            400,
            f'"{req.model}" does not support rerank: it is not a reranker '
            "(a GGUF with pooling type rank)",
        )
    texts = _texts(req.documents)
    opts = Options.resolve(model.view.params, req.options, num_ctx=ctx.default_num_ctx)
    load = model.load_request(
        opts.load(embedding=True), keep_alive=keep_alive(req.keep_alive), priority=req.priority
    )
    async with ctx.scheduler.acquire(model.key(embedding=True), load) as runner:
        out = await runner.rerank(
            RunnerRerank(query=req.query, documents=texts, truncate=req.truncate is not False)
        )
    ctx.metrics.prompt(model.display_name, out.prompt_eval_count)
    order = sorted(range(len(texts)), key=lambda i: (-out.scores[i], i))
    results: list[dict[str, Any]] = []
    for i in order[: req.top_n or len(order)]:
        result: dict[str, Any] = {"index": i, "relevance_score": out.scores[i]}
        if req.return_documents:
            result["document"] = {"text": texts[i]}
        results.append(result)
    usage = {"prompt_tokens": out.prompt_eval_count, "total_tokens": out.prompt_eval_count}
    return {"model": req.model, "object": "list", "results": results, "usage": usage}

"""``/api/embed`` and the legacy ``/api/embeddings``.

``/api/embed`` L2-normalises each vector (and re-normalises after cutting to ``dimensions``);
``/api/embeddings`` returns the raw pooled vector, as Ollama's legacy route does. A completion
model used for embeddings gets its own runner (loaded with embeddings on), so chat on the same
model keeps its runner.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from ocillm.runner import EmbeddingRequest
from ocillm.server.context import ServerContext, keep_alive
from ocillm.server.errors import ApiError
from ocillm.server.models import ServedModel
from ocillm.server.options import Options
from ocillm.server.schemas.ollama import EmbeddingsRequest, EmbedRequest


def _inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ApiError(400, "invalid input type")


def _cut(vector: list[float], dimensions: int | None) -> list[float]:
    if not dimensions or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head))
    return [x / norm for x in head] if norm > 0 else head


async def _embed(
    ctx: ServerContext,
    model: ServedModel,
    inputs: list[str],
    *,
    options: Any,
    alive: Any,
    priority: int,
    normalize: bool,
    truncate: bool,
) -> tuple[list[list[float]], int, int]:
    """(vectors, prompt tokens, load nanoseconds)."""
    opts = Options.resolve(model.view.params, options, num_ctx=ctx.default_num_ctx)
    load = model.load_request(
        opts.load(embedding=True), keep_alive=keep_alive(alive), priority=priority
    )
    asked = time.perf_counter_ns()
    async with ctx.scheduler.acquire(model.key(embedding=True), load) as runner:
        load_ns = time.perf_counter_ns() - asked
        if not inputs:
            return [], 0, load_ns
        out = await runner.embed(
            EmbeddingRequest(input=inputs, normalize=normalize, truncate=truncate)
        )
    ctx.metrics.prompt(model.display_name, out.prompt_eval_count)
    return out.embeddings, out.prompt_eval_count, load_ns


async def embed(ctx: ServerContext, req: EmbedRequest) -> dict[str, Any]:
    start = time.perf_counter_ns()
    inputs = _inputs(req.input)
    model = await asyncio.to_thread(ctx.catalog.open, req.model)
    vectors, count, load_ns = await _embed(
        ctx,
        model,
        inputs,
        options=req.options,
        alive=req.keep_alive,
        priority=req.priority,
        normalize=True,
        truncate=req.truncate is not False,
    )
    return {
        "model": req.model,
        "embeddings": [_cut(v, req.dimensions) for v in vectors],
        "total_duration": time.perf_counter_ns() - start,
        "load_duration": load_ns,
        "prompt_eval_count": count,
    }


async def embeddings(ctx: ServerContext, req: EmbeddingsRequest) -> dict[str, Any]:
    model = await asyncio.to_thread(ctx.catalog.open, req.model)
    vectors, _, _ = await _embed(
        ctx,
        model,
        [req.prompt] if req.prompt else [],
        options=req.options,
        alive=req.keep_alive,
        priority=0,
        normalize=False,
        truncate=True,
    )
    return {"embedding": vectors[0] if vectors else []}

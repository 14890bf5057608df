"""How many tokens a chat's prompt is: rendered as the chat would be, tokenized by the model.

The image's template renders the messages (with its SYSTEM and MESSAGEs, the tools and
``think``, as :func:`ocillm.server.generate.chat` renders them, without dropping old turns), and
the model's own tokenizer counts them, so the model is loaded (or its loaded runner used).
"""

from __future__ import annotations

import asyncio

from ocillm.server.context import ServerContext, keep_alive
from ocillm.server.errors import ApiError
from ocillm.server.generate import NO_VISION
from ocillm.server.options import Options
from ocillm.server.prompt import chat_messages, render_chat, resolve_think
from ocillm.server.schemas.ollama import ChatRequest


async def count_chat_tokens(ctx: ServerContext, req: ChatRequest) -> int:
    model = await asyncio.to_thread(ctx.catalog.open, req.model)
    if "completion" not in model.capabilities:
        raise ApiError(400, f'"{req.model}" does not support chat')
    if req.tools and "tools" not in model.capabilities:
        raise ApiError(400, f"{model.full_name} does not support tools")
    if any(m.images for m in req.messages) and not model.has_projector:
        raise ApiError(400, NO_VISION)
    think = resolve_think(model, req.think)
    tools = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
    messages = chat_messages(model, [m.model_dump(exclude_none=True) for m in req.messages])
    prompt = render_chat(model, messages, tools=tools, think=think)
    opts = Options.resolve(model.view.params, req.options, num_ctx=ctx.default_num_ctx)
    load = model.load_request(
        opts.load(), keep_alive=keep_alive(req.keep_alive), priority=req.priority
    )
    async with ctx.scheduler.acquire(model.key(), load) as runner:
        return len(await runner.tokenize(prompt))

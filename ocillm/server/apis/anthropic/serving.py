"""The work of ``/v1/messages``: run the native chat and write its answer as an Anthropic
``message``, or as Anthropic's event stream:

``message_start`` (the message with no content), ``ping``, then per content block
``content_block_start``, ``content_block_delta`` (``thinking_delta``, ``text_delta``, or one
``input_json_delta`` with a tool call's whole input), ``content_block_stop``; then
``message_delta`` (``stop_reason``, ``stop_sequence``, usage) and ``message_stop``. Blocks come in
the order the model writes them: thinking, text, tool calls.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

from ocillm.server import generate as generate_work
from ocillm.server.apis.anthropic import translate
from ocillm.server.apis.anthropic.protocol import CountTokensRequest, MessagesRequest
from ocillm.server.apis.shared.results import Answer, Call, Piece, answer, piece
from ocillm.server.apis.shared.sse import OpenAIObject
from ocillm.server.apis.shared.tokens import count_chat_tokens
from ocillm.server.context import ServerContext


def new_id() -> str:
    return "msg_" + secrets.token_hex(12)


def stop_reason(reason: str | None, stop_sequence: str | None, called: bool) -> str:
    if called:
        return "tool_use"
    if reason == "length":
        return "max_tokens"
    return "stop_sequence" if stop_sequence is not None else "end_turn"


def tool_use(call: Call) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}


def _kept(calls: list[Call], sent: int, one_only: bool) -> list[Call]:
    return calls[: max(1 - sent, 0)] if one_only else calls


def message(mid: str, model: str, whole: Answer, one_only: bool) -> OpenAIObject:
    content: list[dict[str, Any]] = []
    if whole.thinking:
        content.append({"type": "thinking", "thinking": whole.thinking, "signature": ""})
    if whole.text:
        content.append({"type": "text", "text": whole.text})
    calls = _kept(whole.calls, 0, one_only)
    content.extend(tool_use(call) for call in calls)
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(whole.done_reason, whole.stop_sequence, bool(calls)),
        "stop_sequence": whole.stop_sequence,
        "usage": {
            "input_tokens": whole.usage.input_tokens,
            "output_tokens": whole.usage.output_tokens,
        },
    }


class Events:
    """Native chat pieces → Anthropic's stream events."""

    def __init__(self, mid: str, model: str, one_only: bool) -> None:
        self.mid = mid
        self.model = model
        self.one_only = one_only
        self.index = -1
        self.open: str | None = None  # the kind of the open block: "thinking" or "text"
        self.calls = 0

    def start(self) -> list[OpenAIObject]:
        shell: dict[str, Any] = {
            "id": self.mid,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": shell}, {"type": "ping"}]

    def _close(self) -> list[OpenAIObject]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _block(self, block: dict[str, Any]) -> list[OpenAIObject]:
        out = self._close()
        self.index += 1
        out.append({"type": "content_block_start", "index": self.index, "content_block": block})
        return out

    def _delta(self, kind: str, delta: dict[str, Any]) -> list[OpenAIObject]:
        out: list[OpenAIObject] = []
        if self.open != kind:
            empty: dict[str, Any] = {"type": "text", "text": ""}
            if kind == "thinking":
                empty = {"type": "thinking", "thinking": "", "signature": ""}
            out += self._block(empty)
            self.open = kind
        out.append({"type": "content_block_delta", "index": self.index, "delta": delta})
        return out

    def add(self, p: Piece) -> list[OpenAIObject]:
        out: list[OpenAIObject] = []
        if p.thinking:
            out += self._delta("thinking", {"type": "thinking_delta", "thinking": p.thinking})
        if p.text:
            out += self._delta("text", {"type": "text_delta", "text": p.text})
        for call in _kept(p.calls, self.calls, self.one_only):
            out += self._block({**tool_use(call), "input": {}})
            delta = {"type": "input_json_delta", "partial_json": call.arguments_json}
            out.append({"type": "content_block_delta", "index": self.index, "delta": delta})
            out.append({"type": "content_block_stop", "index": self.index})
            self.calls += 1
        if p.done:
            out += self._close()
            reason = stop_reason(p.done_reason, p.stop_sequence, self.calls > 0)
            usage = {"input_tokens": p.usage.input_tokens, "output_tokens": p.usage.output_tokens}
            end: dict[str, Any] = {"stop_reason": reason, "stop_sequence": p.stop_sequence}
            out.append({"type": "message_delta", "delta": end, "usage": usage})
            out.append({"type": "message_stop"})
        return out


async def messages(ctx: ServerContext, req: MessagesRequest) -> AsyncIterator[OpenAIObject]:
    """``/v1/messages``: one ``message``, or its event stream."""
    call = translate.chat_request(req)
    mid, one_only = new_id(), translate.one_call_only(req)
    chunks = generate_work.chat(
        ctx, call.request, require_tools=call.require_tools, report_stop=True
    )
    if not req.stream:
        whole = answer([piece(chunk) async for chunk in chunks])
        yield message(mid, req.model, whole, one_only)
        return
    events = Events(mid, req.model, one_only)
    started = False
    async for chunk in chunks:  # the first chunk comes once the model is loaded and running
        if not started:
            started = True
            for event in events.start():
                yield event
        for event in events.add(piece(chunk)):
            yield event


async def count_tokens(ctx: ServerContext, req: CountTokensRequest) -> OpenAIObject:
    """``/v1/messages/count_tokens``: the prompt's tokens, rendered and tokenized as a request
    with these messages, system, tools and thinking would be."""
    call = translate.chat_request(req)
    return {"input_tokens": await count_chat_tokens(ctx, call.request)}

"""The work of ``/v1/responses``: run the native chat, write its answer as a ``response`` with
output items (``reasoning``, ``message`` with ``output_text``, ``function_call``), or as the
Responses event stream, every event with its ``sequence_number``:

``response.created``, ``response.in_progress``; per item ``response.output_item.added``, then
for a message ``response.content_part.added``, ``response.output_text.delta``…,
``response.output_text.done``, ``response.content_part.done``; for reasoning
``response.reasoning_text.delta``…/``.done``; for a call one
``response.function_call_arguments.delta`` with the whole arguments and ``.done``; then
``response.output_item.done``; at the end ``response.completed`` (``response.incomplete`` when
``max_output_tokens`` cut it, ``response.failed`` on an error once the stream has started).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from ocillm.server import generate as generate_work
from ocillm.server.apis.responses import translate
from ocillm.server.apis.responses.protocol import ResponsesRequest
from ocillm.server.apis.responses.store import ResponseStore
from ocillm.server.apis.shared.results import Answer, Call, Piece, Usage, answer, piece
from ocillm.server.apis.shared.sse import OpenAIObject
from ocillm.server.apis.shared.translate import Turns
from ocillm.server.context import ServerContext
from ocillm.server.errors import status_and_message


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def usage(counts: Usage) -> dict[str, Any]:
    return {
        "input_tokens": counts.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": counts.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": counts.total_tokens,
    }


def reasoning_item(rid: str, thinking: str, req: ResponsesRequest, status: str) -> OpenAIObject:
    item: OpenAIObject = {"id": rid, "type": "reasoning", "status": status, "summary": []}
    item["content"] = [{"type": "reasoning_text", "text": thinking}]
    if req.reasoning is not None and req.reasoning.summary is not None and thinking:
        item["summary"] = [{"type": "summary_text", "text": thinking}]
    if req.include and "reasoning.encrypted_content" in req.include:
        item["encrypted_content"] = base64.b64encode(thinking.encode()).decode()
    return item


def text_part(text: str) -> OpenAIObject:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(mid: str, text: str | None, status: str) -> OpenAIObject:
    content = [] if text is None else [text_part(text)]
    return {"id": mid, "type": "message", "role": "assistant", "status": status, "content": content}


def call_item(call: Call, arguments: str, status: str) -> OpenAIObject:
    return {
        "id": "fc_" + call.id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments,
    }


class Shell:
    """The response object around the output, as each event and the final body carry it."""

    def __init__(self, req: ResponsesRequest) -> None:
        self.req = req
        self.id = new_id("resp")
        self.created = int(time.time())

    def __call__(
        self, status: str, output: list[OpenAIObject], counts: Usage | None, **extra: Any
    ) -> OpenAIObject:
        req = self.req
        fmt = req.text.format if req.text is not None and req.text.format else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens,
            "model": req.model,
            "output": output,
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "previous_response_id": req.previous_response_id,
            "reasoning": {
                "effort": req.reasoning.effort if req.reasoning else None,
                "summary": req.reasoning.summary if req.reasoning else None,
            },
            "store": req.store,
            "temperature": 1.0 if req.temperature is None else req.temperature,
            "text": {
                "format": fmt.model_dump(by_alias=True, exclude_none=True)
                if fmt
                else {"type": "text"}
            },
            "tool_choice": req.tool_choice or "auto",
            "tools": [t.model_dump(exclude_none=True) for t in req.tools or []],
            "top_p": 1.0 if req.top_p is None else req.top_p,
            "truncation": req.truncation or "disabled",
            "usage": None if counts is None else usage(counts),
            "metadata": req.metadata or {},
            **extra,
        }


def _end(reason: str) -> tuple[str, dict[str, Any]]:
    if reason == "length":
        return "incomplete", {"incomplete_details": {"reason": "max_output_tokens"}}
    return "completed", {}


def _kept(calls: list[Call], sent: int, req: ResponsesRequest) -> list[Call]:
    return calls[: max(1 - sent, 0)] if req.parallel_tool_calls is False else calls


def output(whole: Answer, req: ResponsesRequest) -> list[OpenAIObject]:
    items: list[OpenAIObject] = []
    if whole.thinking:
        items.append(reasoning_item(new_id("rs"), whole.thinking, req, "completed"))
    if whole.text or not whole.calls:
        items.append(message_item(new_id("msg"), whole.text, "completed"))
    items += [call_item(c, c.arguments_json, "completed") for c in _kept(whole.calls, 0, req)]
    return items


def remember(turns: Turns, whole: Answer, req: ResponsesRequest) -> list[dict[str, Any]]:
    """The conversation with this answer, as the next turn's history."""
    calls = [(c.id, c.name, c.arguments) for c in _kept(whole.calls, 0, req)]
    turns.add("assistant", whole.text, thinking=whole.thinking or None, tool_calls=calls)
    return turns.messages


class Events:
    """Native chat pieces → Responses stream events, numbered."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.seq = 0
        self.items: list[OpenAIObject] = []  # done items, in order
        self.open: str | None = None  # "reasoning" or "message"
        self.open_id = ""
        self.text = ""
        self.calls = 0

    def _event(self, kind: str, **fields: Any) -> OpenAIObject:
        event = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return event

    def start(self) -> list[OpenAIObject]:
        return [
            self._event("response.created", response=self.shell("in_progress", [], None)),
            self._event("response.in_progress", response=self.shell("in_progress", [], None)),
        ]

    def _at(self) -> dict[str, Any]:
        return {"item_id": self.open_id, "output_index": len(self.items)}

    def _close(self) -> list[OpenAIObject]:
        if self.open is None:
            return []
        at, text, out = self._at(), self.text, []
        if self.open == "message":
            item = message_item(self.open_id, text, "completed")
            out.append(self._event("response.output_text.done", **at, content_index=0, text=text))
            out.append(
                self._event(
                    "response.content_part.done", **at, content_index=0, part=text_part(text)
                )
            )
        else:
            item = reasoning_item(self.open_id, text, self.shell.req, "completed")
            out.append(
                self._event("response.reasoning_text.done", **at, content_index=0, text=text)
            )
        out.append(
            self._event("response.output_item.done", output_index=at["output_index"], item=item)
        )
        self.items.append(item)
        self.open, self.text = None, ""
        return out

    def _open(self, kind: str) -> list[OpenAIObject]:
        out = self._close()
        self.open, self.open_id = kind, new_id("msg" if kind == "message" else "rs")
        if kind == "message":
            item = message_item(self.open_id, None, "in_progress")
        else:
            item = {
                **reasoning_item(self.open_id, "", self.shell.req, "in_progress"),
                "content": [],
            }
        out.append(
            self._event("response.output_item.added", output_index=len(self.items), item=item)
        )
        if kind == "message":
            out.append(
                self._event(
                    "response.content_part.added", **self._at(), content_index=0, part=text_part("")
                )
            )
        return out

    def _delta(self, kind: str, text: str) -> list[OpenAIObject]:
        out = self._open(kind) if self.open != kind else []
        self.text += text
        name = (
            "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        )
        extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
        out.append(self._event(name, **self._at(), content_index=0, delta=text, **extra))
        return out

    def add(self, p: Piece) -> list[OpenAIObject]:
        out: list[OpenAIObject] = []
        if p.thinking:
            out += self._delta("reasoning", p.thinking)
        if p.text:
            out += self._delta("message", p.text)
        for call in _kept(p.calls, self.calls, self.shell.req):
            out += self._close()
            index, item = len(self.items), call_item(call, call.arguments_json, "completed")
            added = {**call_item(call, "", "in_progress")}
            args = {"item_id": item["id"], "output_index": index}
            out.append(self._event("response.output_item.added", output_index=index, item=added))
            out.append(
                self._event(
                    "response.function_call_arguments.delta", **args, delta=call.arguments_json
                )
            )
            out.append(
                self._event(
                    "response.function_call_arguments.done", **args, arguments=call.arguments_json
                )
            )
            out.append(self._event("response.output_item.done", output_index=index, item=item))
            self.items.append(item)
            self.calls += 1
        if p.done:
            if not self.items and self.open is None:
                out += self._open("message")  # an empty answer is an empty message, as whole
            out += self._close()
            status, extra = _end(p.done_reason or "stop")
            final = self.shell(status, self.items, p.usage, **extra)
            out.append(self._event(f"response.{status}", response=final))
        return out

    def failed(self, exc: BaseException) -> OpenAIObject:
        _, message = status_and_message(exc)
        error = {"code": "server_error", "message": message}
        return self._event(
            "response.failed", response=self.shell("failed", self.items, None, error=error)
        )


async def create(
    ctx: ServerContext, store: ResponseStore, req: ResponsesRequest
) -> AsyncIterator[OpenAIObject]:
    """``POST /v1/responses``: one ``response``, or its event stream."""
    history = store.get(req.previous_response_id).conversation if req.previous_response_id else []
    call, turns = translate.chat_request(req, history)
    chunks = generate_work.chat(ctx, call.request, require_tools=call.require_tools)
    shell = Shell(req)
    if not req.stream:
        whole = answer([piece(chunk) async for chunk in chunks])
        status, extra = _end(whole.done_reason)
        body = shell(status, output(whole, req), whole.usage, **extra)
        if req.store:
            store.put(body, remember(turns, whole, req))
        yield body
        return
    events, pieces = Events(shell), []
    first = await anext(chunks)  # errors before the first chunk get their real status
    for event in events.start():
        yield event
    try:
        pieces.append(piece(first))
        for event in events.add(pieces[-1]):
            yield event
        async for chunk in chunks:
            pieces.append(piece(chunk))
            for event in events.add(pieces[-1]):
                yield event
    except Exception as exc:
        yield events.failed(exc)
        return
    if req.store:
        whole = answer(pieces)
        status, extra = _end(whole.done_reason)
        body = shell(status, events.items, whole.usage, **extra)
        store.put(body, remember(turns, whole, req))

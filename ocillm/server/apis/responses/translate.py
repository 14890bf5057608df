"""Responses requests → the native chat request, through :mod:`..shared.translate`.

* ``instructions`` is the first system message; ``input`` a string (one user message) or items:
  messages (``developer`` is ``system``; ``input_text``/``output_text`` parts and
  ``input_image`` data URIs, each part a message of its own), ``function_call`` items (tool calls
  of the assistant message they follow), ``function_call_output`` items (tool results, their
  tool found from the call id), ``reasoning`` items (the thinking of the next assistant turn).
* ``previous_response_id``: the stored conversation it ended comes first.
* ``temperature``/``top_p`` (1.0 when omitted, as OpenAI), ``max_output_tokens`` →
  ``num_predict``; ``text.format`` ``json_schema`` → ``format: <schema>``, ``json_object`` →
  ``"json"``; ``reasoning.effort`` → ``think`` as on chat completions; ``tool_choice`` as there;
  ``truncation`` ``auto`` drops old turns to fit, ``disabled`` refuses a prompt too long (unset:
  the native default, which drops them).
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import ValidationError

from ocillm.server.apis.openai.translate import tool_choice
from ocillm.server.apis.responses.protocol import (
    ITEM_TYPES,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputImage,
    InputItem,
    MessageItem,
    ReasoningItem,
    ResponsesRequest,
)
from ocillm.server.apis.shared import translate as shared
from ocillm.server.apis.shared.translate import NativeChat, Sampling, Turns
from ocillm.server.errors import ApiError, describe_validation


def items(value: str | list[dict[str, Any]]) -> list[InputItem]:
    if isinstance(value, str):
        return [MessageItem(role="user", content=value)]
    out = []
    for i, raw in enumerate(value):
        kind = raw.get("type", "message")
        model = ITEM_TYPES.get(kind) if isinstance(kind, str) else None
        if model is None:
            raise ApiError(400, f"input.{i}.type: unsupported input item type {kind!r}")
        try:
            out.append(model.model_validate(raw))
        except ValidationError as err:
            raise ApiError(400, f"input.{i}: {describe_validation(list(err.errors()))}") from None
    return out


def _reasoning_text(item: ReasoningItem) -> str:
    if item.encrypted_content:  # ours: the thinking as base64 (see serving.reasoning_item)
        try:
            return base64.b64decode(item.encrypted_content, validate=True).decode()
        except ValueError:
            raise ApiError(400, "invalid reasoning encrypted_content") from None
    parts = item.content or item.summary
    return "\n\n".join(str(p.get("text") or "") for p in parts)


def _message(turns: Turns, item: MessageItem, thinking: str | None) -> None:
    role = "system" if item.role == "developer" else item.role
    if isinstance(item.content, str):
        turns.add(role, item.content, thinking=thinking)
        return
    for part in item.content:
        if isinstance(part, InputImage):
            if part.image_url is None:
                raise ApiError(400, "input_image: only image_url (a base64 data URI) is supported")
            turns.add(role, images=[shared.data_uri_image(part.image_url)], thinking=thinking)
        else:
            turns.add(role, part.text, thinking=thinking)
        thinking = None


def conversation(given: list[InputItem], turns: Turns) -> None:
    """Append the input items to ``turns``."""
    thinking: str | None = None
    for item in given:
        if isinstance(item, ReasoningItem):
            thinking = _reasoning_text(item)
        elif isinstance(item, MessageItem):
            _message(turns, item, thinking)
            thinking = None
        elif isinstance(item, FunctionCallItem):
            call = (item.call_id, item.name, item.arguments)
            last = turns.messages[-1] if turns.messages else None
            if last is not None and last["role"] == "assistant" and thinking is None:
                last.setdefault("tool_calls", []).append(
                    {
                        "id": item.call_id,
                        "function": {
                            "name": item.name,
                            "arguments": shared.arguments(item.arguments),
                        },
                    }
                )
            else:
                turns.add("assistant", thinking=thinking, tool_calls=[call])
            thinking = None
        elif isinstance(item, FunctionCallOutputItem):
            output = item.output
            text = output if isinstance(output, str) else "\n\n".join(p.text for p in output)
            turns.tool_result(item.call_id, text)


def response_format(req: ResponsesRequest) -> Any:
    fmt = req.text.format if req.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return "json"
    if fmt.schema_ is None:
        raise ApiError(400, "text.format.schema: required for a json_schema format")
    return fmt.schema_


def chat_request(req: ResponsesRequest, history: list[dict[str, Any]]) -> tuple[NativeChat, Turns]:
    """The native chat request, and the conversation (without instructions) it carries on."""
    turns = Turns(list(history))
    conversation(items(req.input), turns)
    if not turns.messages:
        raise ApiError(400, "input: at least one item is required")
    with_instructions = Turns([])
    if req.instructions:
        with_instructions.add("system", req.instructions)
    with_instructions.messages.extend(turns.messages)
    sampling = Sampling(
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        max_tokens=req.max_output_tokens,
    )
    tools = [shared.function_tool(t.name, t.description, t.parameters) for t in req.tools or []]
    effort = req.reasoning.effort if req.reasoning is not None else None
    call = shared.chat_request(
        model=req.model,
        turns=with_instructions,
        sampling=sampling,
        tools=tools or None,
        tool_choice=tool_choice(req.tool_choice) if tools else None,
        format=response_format(req),
        think=shared.think_from_effort(effort),
        stream=req.stream,
        truncate=None if req.truncation is None else req.truncation == "auto",
    )
    return call, turns

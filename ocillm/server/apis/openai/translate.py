"""OpenAI requests → native requests, through :mod:`..shared.translate` (Ollama's
``openai/openai.go`` rules).

* Defaults differ from the native API: ``temperature`` and ``top_p`` are 1.0 when omitted.
  ``max_completion_tokens`` (else ``max_tokens``) → ``num_predict``; ``stop`` a string or a
  list; ``seed``; ``frequency_penalty``/``presence_penalty``.
* ``response_format``: ``json_object`` → ``format: "json"``; ``json_schema`` → its schema.
* ``reasoning.effort``/``reasoning_effort`` → ``think``.
* Messages: content as text or content parts (``text``; ``image_url`` as a base64 data URI only);
  ``tool_calls`` with ``arguments`` as JSON text; a ``tool`` message's tool is its ``name``,
  else the call its ``tool_call_id`` names.
* ``tool_choice``: ``auto``, ``none``, ``required`` or ``{"type": "function", "function":
  {"name": ...}}``.
"""

from __future__ import annotations

from typing import Any

from ocillm.server.apis.openai.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    EmbeddingRequest,
)
from ocillm.server.apis.shared import translate as shared
from ocillm.server.apis.shared.translate import NativeChat, Sampling, ToolChoice, Turns
from ocillm.server.errors import ApiError
from ocillm.server.schemas import ollama as native


def stops(value: Any, *, strict: bool) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        bad = next((s for s in value if not isinstance(s, str)), None)
        if strict and bad is not None:
            raise ApiError(400, f"invalid type for 'stop' field: {shared.go_type(bad)}")
        return [s for s in value if isinstance(s, str)]
    return None


def response_format(req: ChatCompletionRequest) -> Any:
    fmt = req.response_format
    if fmt is None:
        return None
    kind = fmt.type.strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema" and fmt.json_schema is not None:
        return fmt.json_schema.schema_
    return None


def tool_choice(value: Any) -> ToolChoice | None:
    """OpenAI's ``tool_choice`` (chat completions and Responses shapes alike)."""
    if value is None or value in ("auto", "none", "required"):
        return value  # type: ignore[no-any-return]
    if isinstance(value, dict) and value.get("type") == "function":
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else value.get("name")
        if isinstance(name, str) and name:
            return name
    raise ApiError(
        400,
        'invalid tool_choice: expected "auto", "none", "required" or '
        '{"type": "function", "function": {"name": ...}}',
    )


def _parts(turns: Turns, role: str, parts: list[Any]) -> int:
    """Each text and image part as a message of its own; how many were added."""
    for part in parts:
        if not isinstance(part, dict):
            raise ApiError(400, "invalid message format")
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise ApiError(400, "invalid message format")
            turns.add(role, part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise ApiError(400, "invalid message format")
            turns.add(role, images=[shared.data_uri_image(url)])
        else:
            raise ApiError(400, "invalid message format")
    return len(parts)


def _message(turns: Turns, msg: ChatMessage) -> None:
    calls = [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or []]
    tool_name = None
    if msg.role.lower() == "tool":
        tool_name = msg.name or turns.called(msg.tool_call_id) or None
    extra: dict[str, Any] = {
        "thinking": msg.reasoning,
        "tool_calls": calls,
        "tool_name": tool_name,
        "tool_call_id": msg.tool_call_id,
    }
    content = msg.content
    if isinstance(content, str):
        turns.add(msg.role, content, **extra)
    elif isinstance(content, list):
        if _parts(turns, msg.role, content) and any(extra.values()):
            last = turns.messages.pop()
            turns.add(last["role"], last["content"], images=last.get("images", ()), **extra)
    elif content is None and msg.tool_calls is not None:
        turns.add(msg.role, **extra)
    else:
        raise ApiError(400, f"invalid message content type: {shared.go_type(content)}")


def chat_request(req: ChatCompletionRequest) -> NativeChat:
    """The native chat request an OpenAI chat completion request stands for."""
    if not req.messages:
        raise ApiError(400, "[] is too short - 'messages'")
    turns = Turns()
    for msg in req.messages:
        _message(turns, msg)
    limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    sampling = Sampling(
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        max_tokens=limit,
        stop=stops(req.stop, strict=False),
        seed=req.seed,
        frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty,
    )
    effort = req.reasoning.effort if req.reasoning is not None else req.reasoning_effort
    call = shared.chat_request(
        model=req.model,
        turns=turns,
        sampling=sampling,
        tools=req.tools or None,
        tool_choice=tool_choice(req.tool_choice) if req.tools else None,
        format=response_format(req),
        think=shared.think_from_effort(effort),
        stream=bool(req.stream),
    )
    if req.top_logprobs is not None:
        if not 0 <= req.top_logprobs <= 20:
            raise ApiError(400, f"top_logprobs must be between 0 and 20, got {req.top_logprobs}")
        if not req.logprobs:
            raise ApiError(400, "top_logprobs needs logprobs: true")
    call.request.logprobs = bool(req.logprobs)
    call.request.top_logprobs = req.top_logprobs or 0
    return call


def completion_request(req: CompletionRequest) -> native.GenerateRequest:
    """The native generate request an OpenAI (legacy) completion request stands for."""
    sampling = Sampling(
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=req.top_p if req.top_p else 1.0,
        frequency_penalty=req.frequency_penalty or 0.0,
        presence_penalty=req.presence_penalty or 0.0,
        stop=stops(req.stop, strict=True),
        max_tokens=req.max_tokens,
        seed=req.seed,
    )
    request = shared.generate_request(
        model=req.model,
        prompt=req.prompt,
        suffix=req.suffix,
        sampling=sampling,
        stream=bool(req.stream),
    )
    if req.logprobs is not None:
        # The legacy API's logprobs is a count: the chosen token and that many alternatives.
        if not 0 <= req.logprobs <= 5:
            raise ApiError(400, f"logprobs must be between 0 and 5, got {req.logprobs}")
        request.logprobs = True
        request.top_logprobs = req.logprobs
    return request


def embed_request(req: EmbeddingRequest) -> native.EmbedRequest:
    fmt = req.encoding_format
    if fmt and fmt.lower() not in ("float", "base64"):
        raise ApiError(
            400,
            f"Invalid value for 'encoding_format' = {fmt}. Supported values: ['float', 'base64'].",
        )
    value = req.input
    if value == "":
        value = [""]
    if value is None or value == []:
        raise ApiError(400, "invalid input")
    data = {"model": req.model, "input": value, "dimensions": req.dimensions or None}
    request: native.EmbedRequest = shared.validated(native.EmbedRequest, data)
    return request

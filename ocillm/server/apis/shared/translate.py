"""One translation of every API's request into ocillm's native chat and generate requests.

Each API reads its own wire shapes and hands the pieces here: messages as :class:`Turns`
(text, images, thinking, tool calls, tool results), sampling as :class:`Sampling`, tools as
native function specs, the tool choice, the output format and ``think``. What every API has in
common is decided once: base64 and data-URI images, tool-call arguments as JSON text, a tool
result's tool found from the call id it answers, a reasoning effort as a think level, which
tools a ``tool_choice`` keeps or requires, and the native request's validation.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from ocillm.server.errors import ApiError, validation_error
from ocillm.server.schemas import ollama as native

IMAGE_TYPES = ("jpeg", "jpg", "png", "webp")
#: ``auto`` (the model decides), ``none`` (no tools), ``required`` (some call), or a tool's name.
ToolChoice = Literal["auto", "none", "required"] | str


def go_type(value: Any) -> str:
    """The Go type name Ollama's messages print for a JSON value (``%T``)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def base64_image(data: str) -> str:
    """Base64 image data as it is, once it decodes."""
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid image input") from None
    return data


def data_uri_image(url: str) -> str:
    """The base64 payload of a data URI (``data:image/png;base64,…``); remote URLs are refused."""
    if url.startswith(("http://", "https://")):
        raise ApiError(
            400,
            "image URLs are not currently supported, please use base64 encoded data instead",
        )
    prefixes = ("data:;base64,", *(f"data:image/{t};base64," for t in IMAGE_TYPES))
    prefix = next((p for p in prefixes if url.startswith(p)), None)
    if prefix is None:
        raise ApiError(400, "invalid image input")
    return base64_image(url[len(prefix) :])


def arguments(value: Any) -> dict[str, Any]:
    """A tool call's arguments: an object, or JSON text of one (empty text: no arguments)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ApiError(400, "invalid tool call arguments") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "invalid tool call arguments")
    return value


def function_tool(name: str, description: str | None, parameters: Any) -> dict[str, Any]:
    """A native tool spec (what templates see as ``.Tools``)."""
    function: dict[str, Any] = {"name": name}
    if description:
        function["description"] = description
    function["parameters"] = parameters if parameters is not None else {"type": "object"}
    return {"type": "function", "function": function}


def think_from_effort(effort: str | None) -> bool | str | None:
    """OpenAI's reasoning effort as ``think``: ``none`` off; ``minimal`` → low;
    ``xhigh``/``ultra`` → max; unset → the model's default."""
    if not effort:
        return None
    if effort == "none":
        return False
    if effort == "minimal":
        return "low"
    if effort in ("low", "medium", "high", "max"):
        return effort
    if effort in ("xhigh", "ultra"):
        return "max"
    raise ApiError(
        400,
        f'invalid reasoning value: "{effort}" (must be "minimal", "low", "medium", "high", '
        '"xhigh", "ultra", "max", or "none")',
    )


@dataclass
class Turns:
    """Native chat messages, built message by message."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        role: str,
        content: str = "",
        *,
        images: Sequence[str] = (),
        thinking: str | None = None,
        tool_calls: Sequence[tuple[str | None, str, Any]] = (),
        tool_name: str | None = None,
        tool_call_id: str | None = None,
    ) -> dict[str, Any]:
        """One message; ``tool_calls`` as (id, name, arguments object or JSON text)."""
        message: dict[str, Any] = {"role": role, "content": content}
        if images:
            message["images"] = list(images)
        if thinking:
            message["thinking"] = thinking
        calls = []
        for call_id, name, args in tool_calls:
            call: dict[str, Any] = {"function": {"name": name, "arguments": arguments(args)}}
            if call_id:
                call["id"] = call_id
            calls.append(call)
        if calls:
            message["tool_calls"] = calls
        if tool_name:
            message["tool_name"] = tool_name
        if tool_call_id:
            message["tool_call_id"] = tool_call_id
        self.messages.append(message)
        return message

    def tool_result(self, call_id: str | None, content: str, name: str | None = None) -> None:
        """A tool's answer; its tool is ``name``, else the function of the latest earlier call
        whose id is ``call_id`` (the template renders results with the tool's name)."""
        self.add("tool", content, tool_name=name or self.called(call_id), tool_call_id=call_id)

    def called(self, call_id: str | None) -> str | None:
        for message in reversed(self.messages):
            for call in message.get("tool_calls") or []:
                if call_id and call.get("id") == call_id:
                    return str(call["function"]["name"])
        return None


@dataclass
class Sampling:
    """The options every API can set (None: not set by the request)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None

    def options(self) -> dict[str, Any]:
        named = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "num_predict": self.max_tokens,
            "stop": self.stop,
            "seed": self.seed,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
        }
        return {k: v for k, v in named.items() if v is not None}


@dataclass
class NativeChat:
    """The native chat request, and what the chat call needs beyond it."""

    request: native.ChatRequest
    require_tools: list[str] = field(default_factory=list)


def chosen_tools(
    tools: list[dict[str, Any]], choice: ToolChoice | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """(the tools the template sees, the tools one of which must be called)."""
    names = [str(t["function"]["name"]) for t in tools]
    if choice in (None, "auto"):
        return tools, []
    if choice == "none":
        return [], []
    if not tools:
        raise ApiError(400, "tool_choice requires a tool call, but no tools were given")
    if choice == "required":
        return tools, names
    if choice not in names:
        raise ApiError(400, f"tool_choice names the tool {choice!r}, which is not in tools")
    return tools, [choice]


def validated(model: type[Any], data: Mapping[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise validation_error(err) from None


def chat_request(
    *,
    model: str,
    turns: Turns,
    sampling: Sampling,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: ToolChoice | None = None,
    format: Any = None,
    think: bool | str | None = None,
    stream: bool = False,
    truncate: bool | None = None,
) -> NativeChat:
    """The native chat request these pieces stand for."""
    kept, required = chosen_tools(tools or [], tool_choice)
    if required and format is not None:
        raise ApiError(400, "a required tool call cannot be combined with a response format")
    data: dict[str, Any] = {
        "model": model,
        "messages": turns.messages,
        "options": sampling.options(),
        "format": format,
        "think": think,
        "tools": kept or None,
        "stream": stream,
        "truncate": truncate,
    }
    request: native.ChatRequest = validated(native.ChatRequest, data)
    return NativeChat(request, required)


def generate_request(
    *, model: str, prompt: str, suffix: str | None, sampling: Sampling, stream: bool
) -> native.GenerateRequest:
    """The native generate request of a plain-text completion."""
    data = {
        "model": model,
        "prompt": prompt,
        "suffix": suffix or None,
        "options": sampling.options(),
        "stream": stream,
    }
    request: native.GenerateRequest = validated(native.GenerateRequest, data)
    return request

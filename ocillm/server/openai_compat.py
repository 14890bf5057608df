"""The OpenAI-compatible API as Ollama's compatibility layer defines it (reference/ollama.md §1.13).

Each OpenAI request is translated to the native request and served by the same library calls
the native routes make (:mod:`.generate`, :mod:`.embed`, :mod:`.manage`); the native chunks are
translated back into OpenAI objects. No HTTP hop in between. The translation follows Ollama's
``openai/openai.go`` and ``middleware/openai.go``:

* Defaults differ from the native API: ``temperature`` and ``top_p`` are 1.0 when omitted.
  ``max_completion_tokens`` (else ``max_tokens``) → ``num_predict``; ``stop`` a string or a
  list; ``seed``; ``frequency_penalty``/``presence_penalty``.
* ``response_format``: ``json_object`` → ``format: "json"``; ``json_schema`` → its schema.
* ``reasoning.effort``/``reasoning_effort`` → ``think`` (``none`` off; ``minimal`` → low;
  ``xhigh``/``ultra`` → max).
* Messages: content as text or content parts (``text``; ``image_url`` as a base64 data URI only);
  ``tool_calls`` with ``arguments`` as JSON text; a ``tool`` message's tool is its ``name``,
  else the call its ``tool_call_id`` names.
* Streams: the first chunk carries ``role``; thinking goes in ``reasoning``; a tool call arrives
  whole in one chunk (``id``, ``index``, ``arguments`` as JSON text); the finish reason comes in a
  chunk of its own with an empty delta (``tool_calls`` instead of ``stop`` when a call was made);
  ``stream_options.include_usage`` adds a chunk with no choices and the usage.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import struct
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ocillm.errors import OcillmError
from ocillm.oci.reference import parse_reference
from ocillm.server import embed as embed_work
from ocillm.server import generate as generate_work
from ocillm.server import manage
from ocillm.server.context import ServerContext
from ocillm.server.errors import ApiError, validation_error
from ocillm.server.schemas import ollama as native
from ocillm.server.schemas.openai import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    EmbeddingRequest,
    StreamOptions,
)
from ocillm.server.streaming import Chunk

OpenAIObject = dict[str, Any]
FINGERPRINT = "fp_ollama"
IMAGE_TYPES = ("jpeg", "jpg", "png", "webp")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def _validated(model: type[Any], data: Mapping[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise validation_error(err) from None


def _go_type(value: Any) -> str:
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


# --- requests ---------------------------------------------------------------------------------


def _stops(value: Any, *, strict: bool) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        bad = next((s for s in value if not isinstance(s, str)), None)
        if strict and bad is not None:
            raise ApiError(400, f"invalid type for 'stop' field: {_go_type(bad)}")
        return [s for s in value if isinstance(s, str)]
    return None


def _think(req: ChatCompletionRequest) -> bool | str | None:
    effort = req.reasoning.effort if req.reasoning is not None else req.reasoning_effort
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


def _format(req: ChatCompletionRequest) -> Any:
    fmt = req.response_format
    if fmt is None:
        return None
    kind = fmt.type.strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema" and fmt.json_schema is not None:
        return fmt.json_schema.schema_
    return None


def _image(url: str) -> str:
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
    payload = url[len(prefix) :]
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid image input") from None
    return payload


def _tool_calls(calls: list[Any] | None) -> list[dict[str, Any]] | None:
    if not calls:
        return None
    out = []
    for call in calls:
        args = call.function.arguments
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                raise ApiError(400, "invalid tool call arguments") from None
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ApiError(400, "invalid tool call arguments")
        entry: dict[str, Any] = {"function": {"name": call.function.name, "arguments": args}}
        if call.id:
            entry["id"] = call.id
        out.append(entry)
    return out


def _tool_name(messages: list[ChatMessage], call_id: str) -> str:
    """The function a ``tool_call_id`` names (the last call with that id wins, as Ollama)."""
    for msg in reversed(messages):
        for call in msg.tool_calls or []:
            if call.id == call_id:
                return call.function.name
    return ""


def _parts(msg: ChatMessage, parts: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            raise ApiError(400, "invalid message format")
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise ApiError(400, "invalid message format")
            out.append({"role": msg.role, "content": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise ApiError(400, "invalid message format")
            out.append({"role": msg.role, "content": "", "images": [_image(url)]})
        else:
            raise ApiError(400, "invalid message format")
    return out


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        extra: dict[str, Any] = {}
        if msg.role.lower() == "tool":
            name = msg.name or (_tool_name(messages, msg.tool_call_id) if msg.tool_call_id else "")
            if name:
                extra["tool_name"] = name
        if msg.tool_call_id:
            extra["tool_call_id"] = msg.tool_call_id
        if msg.reasoning:
            extra["thinking"] = msg.reasoning
        calls = _tool_calls(msg.tool_calls)
        if calls:
            extra["tool_calls"] = calls
        content = msg.content
        if isinstance(content, str):
            out.append({"role": msg.role, "content": content, **extra})
        elif isinstance(content, list):
            parts = _parts(msg, content)
            if parts and extra:
                parts[-1].update(extra)
            out.extend(parts)
        elif content is None and msg.tool_calls is not None:
            out.append({"role": msg.role, "content": "", **extra})
        else:
            raise ApiError(400, f"invalid message content type: {_go_type(content)}")
    return out


def chat_request(req: ChatCompletionRequest) -> native.ChatRequest:
    """The native chat request an OpenAI chat completion request stands for."""
    if not req.messages:
        raise ApiError(400, "[] is too short - 'messages'")
    options: dict[str, Any] = {
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p,
    }
    stop = _stops(req.stop, strict=False)
    if stop is not None:
        options["stop"] = stop
    limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if limit is not None:
        options["num_predict"] = limit
    for key in ("seed", "frequency_penalty", "presence_penalty"):
        if getattr(req, key) is not None:
            options[key] = getattr(req, key)
    data: dict[str, Any] = {
        "model": req.model,
        "messages": _messages(req.messages),
        "options": options,
        "format": _format(req),
        "think": _think(req),
        "tools": req.tools or None,
        "stream": bool(req.stream),
    }
    validated: native.ChatRequest = _validated(native.ChatRequest, data)
    return validated


def completion_request(req: CompletionRequest) -> native.GenerateRequest:
    """The native generate request an OpenAI (legacy) completion request stands for."""
    options: dict[str, Any] = {
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": req.top_p if req.top_p else 1.0,
        "frequency_penalty": req.frequency_penalty or 0.0,
        "presence_penalty": req.presence_penalty or 0.0,
    }
    stop = _stops(req.stop, strict=True)
    if stop is not None:
        options["stop"] = stop
    if req.max_tokens is not None:
        options["num_predict"] = req.max_tokens
    if req.seed is not None:
        options["seed"] = req.seed
    data = {
        "model": req.model,
        "prompt": req.prompt,
        "suffix": req.suffix or None,
        "options": options,
        "stream": bool(req.stream),
    }
    validated: native.GenerateRequest = _validated(native.GenerateRequest, data)
    return validated


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
    validated: native.EmbedRequest = _validated(native.EmbedRequest, data)
    return validated


# --- responses --------------------------------------------------------------------------------


def usage(final: Mapping[str, Any]) -> dict[str, int]:
    prompt = int(final.get("prompt_eval_count") or 0)
    completion = int(final.get("eval_count") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def openai_tool_calls(calls: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Native tool calls → OpenAI's (``arguments`` as JSON text)."""
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = json.dumps(
            function.get("arguments") or {}, ensure_ascii=False, separators=(",", ":")
        )
        out.append(
            {
                "id": call.get("id") or "",
                "index": function.get("index", i),
                "type": "function",
                "function": {"name": function.get("name", ""), "arguments": arguments},
            }
        )
    return out


def _finish_reason(reason: Any, tool_calls: bool) -> str | None:
    if not reason:
        return None
    return "tool_calls" if reason == "stop" and tool_calls else str(reason)


def chat_completion(cid: str, created: int, merged: Chunk) -> OpenAIObject:
    """The ``chat.completion`` for a whole (merged) native chat response."""
    msg = merged.get("message") or {}
    calls = openai_tool_calls(msg.get("tool_calls") or [])
    message: dict[str, Any] = {"role": "assistant", "content": msg.get("content") or ""}
    if msg.get("thinking"):
        message["reasoning"] = msg["thinking"]
    if calls:
        message["tool_calls"] = calls
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": merged.get("model", ""),
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(merged.get("done_reason"), bool(calls)),
            }
        ],
        "usage": usage(merged),
    }


class ChatChunks:
    """Native chat chunks → ``chat.completion.chunk`` objects, as Ollama's stream writer does."""

    def __init__(self, cid: str, created: int, options: StreamOptions | None) -> None:
        self.cid = cid
        self.created = created
        self.include_usage = bool(options and options.include_usage)
        self.first_sent = False
        self.tool_call_sent = False

    def _chunk(self, model: str, delta: dict[str, Any], finish: str | None) -> OpenAIObject:
        return {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def add(self, chunk: Chunk) -> list[OpenAIObject]:
        model = str(chunk.get("model", ""))
        msg = chunk.get("message") or {}
        content = str(msg.get("content") or "")
        thinking = str(msg.get("thinking") or "")
        calls = openai_tool_calls(msg.get("tool_calls") or [])
        done = bool(chunk.get("done"))
        out: list[OpenAIObject] = []
        trailer = done and self.first_sent and not (content or thinking or calls)
        if not trailer:
            role = {"role": "assistant"} if not self.first_sent else {}
            if thinking and (content or calls):
                out.append(self._chunk(model, {**role, "reasoning": thinking}, None))
                role = {}
                thinking = ""
            delta: dict[str, Any] = {**role, "content": content}
            if thinking:
                delta["reasoning"] = thinking
            if calls:
                delta["tool_calls"] = calls
                self.tool_call_sent = True
            out.append(self._chunk(model, delta, None))
            self.first_sent = True
        if done:
            reason = _finish_reason(chunk.get("done_reason") or "stop", self.tool_call_sent)
            out.append(self._chunk(model, {}, reason))
            if self.include_usage:
                final = self._chunk(model, {}, None)
                final["choices"] = []
                final["usage"] = usage(chunk)
                out.append(final)
        return out


def _completion(
    cid: str, created: int, chunk: Chunk, text: str, usage_: dict[str, int] | None
) -> OpenAIObject:
    out: OpenAIObject = {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": chunk.get("model", ""),
        "system_fingerprint": FINGERPRINT,
        "choices": [{"text": text, "index": 0, "finish_reason": chunk.get("done_reason") or None}],
    }
    if usage_ is not None:
        out["usage"] = usage_
    return out


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embedding_list(model: str, result: Mapping[str, Any], encoding_format: str | None) -> Any:
    as_base64 = (encoding_format or "").lower() == "base64"
    data = [
        {
            "object": "embedding",
            "embedding": _base64(vector) if as_base64 else vector,
            "index": i,
        }
        for i, vector in enumerate(result.get("embeddings") or [])
    ]
    count = int(result.get("prompt_eval_count") or 0)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": count, "total_tokens": count},
    }


def _owner(name: str) -> str:
    """The namespace of a model name (``library`` for ``tiny:latest``), as Ollama's ``owned_by``."""
    try:
        repository = parse_reference(name).repository
    except OcillmError:
        return ""
    return repository.rsplit("/", 1)[0] if "/" in repository else ""


def _unix(when: datetime | str | None) -> int:
    if when is None:
        return 0
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return int(when.timestamp())


def _model_object(name: str, modified: datetime | str | None) -> OpenAIObject:
    return {"id": name, "object": "model", "created": _unix(modified), "owned_by": _owner(name)}


# --- the work ---------------------------------------------------------------------------------


#: OpenAI's own limit on ``n``.
MAX_CHOICES = 128


def choices_wanted(n: int | None, stream: bool | None) -> int:
    """OpenAI's ``n``: how many choices to generate. Each is its own generation; a stream of
    several interleaved choices is not implemented, so ``n > 1`` with ``stream`` is a 400."""
    if n is None:
        return 1
    if n < 1:
        raise ApiError(400, f"n must be at least 1, got {n}")
    if n > MAX_CHOICES:  # each choice is a whole generation: a huge n would never answer
        raise ApiError(400, f"n must be at most {MAX_CHOICES}, got {n}")
    if n > 1 and stream:
        raise ApiError(400, "n > 1 is not supported with stream: true")
    return n


def _several(objects: list[OpenAIObject]) -> OpenAIObject:
    """n answers as one object: every choice, numbered; the prompt counted once in the usage."""
    merged = dict(objects[0])
    choices = []
    for i, obj in enumerate(objects):
        for choice in obj["choices"]:
            choices.append({**choice, "index": i})
    merged["choices"] = choices
    completion = sum(int(o["usage"]["completion_tokens"]) for o in objects)
    prompt = int(merged["usage"]["prompt_tokens"])
    merged["usage"] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return merged


async def chat(ctx: ServerContext, req: ChatCompletionRequest) -> AsyncIterator[OpenAIObject]:
    """``/v1/chat/completions``: one ``chat.completion``, or the stream's chunks."""
    cid, created = new_id("chatcmpl"), int(time.time())
    n = choices_wanted(req.n, req.stream)
    native_req = chat_request(req)
    if not req.stream:
        answers = []
        for _ in range(n):  # one after another: each takes the model's slot in turn
            collected = [chunk async for chunk in generate_work.chat(ctx, native_req)]
            answers.append(chat_completion(cid, created, generate_work.merge_chat(collected)))
        yield _several(answers)
        return
    chunks = generate_work.chat(ctx, native_req)
    writer = ChatChunks(cid, created, req.stream_options)
    async for chunk in chunks:
        for obj in writer.add(chunk):
            yield obj


async def completions(ctx: ServerContext, req: CompletionRequest) -> AsyncIterator[OpenAIObject]:
    """``/v1/completions``: one ``text_completion``, or the stream's chunks."""
    cid, created = new_id("cmpl"), int(time.time())
    n = choices_wanted(req.n, req.stream)
    native_req = completion_request(req)
    if not req.stream:
        answers = []
        for _ in range(n):
            collected = [chunk async for chunk in generate_work.generate(ctx, native_req)]
            merged = generate_work.merge_generate(collected)
            text = str(merged.get("response") or "")
            answers.append(_completion(cid, created, merged, text, usage(merged)))
        yield _several(answers)
        return
    chunks = generate_work.generate(ctx, native_req)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    async for chunk in chunks:
        yield _completion(cid, created, chunk, str(chunk.get("response") or ""), None)
        if chunk.get("done") and include_usage:
            final = _completion(cid, created, chunk, "", usage(chunk))
            final["choices"] = []
            yield final


async def embeddings(ctx: ServerContext, req: EmbeddingRequest) -> AsyncIterator[OpenAIObject]:
    """``/v1/embeddings``: the vectors as floats or base64 (little-endian float32)."""
    result = await embed_work.embed(ctx, embed_request(req))
    yield embedding_list(req.model, result, req.encoding_format)


async def list_models(ctx: ServerContext) -> OpenAIObject:
    tags = await asyncio.to_thread(manage.tags, ctx)
    data = [_model_object(m["model"], m.get("modified_at")) for m in tags["models"]]
    return {"object": "list", "data": data}


async def retrieve_model(ctx: ServerContext, name: str) -> OpenAIObject:
    model = await asyncio.to_thread(ctx.catalog.open, name)
    return _model_object(name, model.view.modified)

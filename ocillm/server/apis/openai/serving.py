"""The work of the OpenAI routes: run the native chat, generate and embed, and write their
answers as OpenAI objects (``chat.completion`` and its chunks, ``text_completion``, embedding
lists, models), as Ollama's ``openai/openai.go`` and ``middleware/openai.go`` do.

Streams: the first chunk carries ``role``; thinking goes in ``reasoning``; a tool call arrives
whole in one chunk (``id``, ``index``, ``arguments`` as JSON text); the finish reason comes in a
chunk of its own with an empty delta (``tool_calls`` instead of ``stop`` when a call was made);
``stream_options.include_usage`` adds a chunk with no choices and the usage.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import struct
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from ocillm.errors import OcillmError
from ocillm.oci.reference import parse_reference
from ocillm.server import embed as embed_work
from ocillm.server import generate as generate_work
from ocillm.server import manage
from ocillm.server.apis.openai import translate
from ocillm.server.apis.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    StreamOptions,
)
from ocillm.server.apis.shared.results import Answer, Call, Piece, Usage, answer, piece
from ocillm.server.apis.shared.sse import OpenAIObject
from ocillm.server.context import ServerContext
from ocillm.server.errors import ApiError

FINGERPRINT = "fp_ollama"
#: OpenAI's own limit on ``n``.
MAX_CHOICES = 128


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def usage(counts: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": counts.input_tokens,
        "completion_tokens": counts.output_tokens,
        "total_tokens": counts.total_tokens,
    }


def tool_calls(calls: list[Call]) -> list[dict[str, Any]]:
    """Tool calls in OpenAI's shape (``arguments`` as JSON text)."""
    return [
        {
            "id": call.id,
            "index": call.index,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for call in calls
    ]


def finish_reason(reason: str | None, called: bool) -> str | None:
    if not reason:
        return None
    return "tool_calls" if reason == "stop" and called else reason


def chat_logprobs(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Ollama's token entries as a chat choice's ``logprobs`` (every entry has its list)."""
    content = [{**e, "top_logprobs": e.get("top_logprobs", [])} for e in entries]
    return {"content": content, "refusal": None}


def completion_logprobs(entries: list[dict[str, Any]], offset: int = 0) -> dict[str, Any]:
    """The legacy completions shape: parallel lists, the alternatives as token → logprob."""
    offsets, at = [], offset
    for e in entries:
        offsets.append(at)
        at += len(e["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [
            {t["token"]: t["logprob"] for t in e.get("top_logprobs", [])} for e in entries
        ],
        "text_offset": offsets,
    }


def chat_completion(cid: str, created: int, model: str, whole: Answer) -> OpenAIObject:
    """The ``chat.completion`` for a whole native chat answer."""
    message: dict[str, Any] = {"role": "assistant", "content": whole.text}
    if whole.thinking:
        message["reasoning"] = whole.thinking
    if whole.calls:
        message["tool_calls"] = tool_calls(whole.calls)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(whole.done_reason, bool(whole.calls)),
                **({"logprobs": chat_logprobs(whole.logprobs)} if whole.logprobs else {}),
            }
        ],
        "usage": usage(whole.usage),
    }


class ChatChunks:
    """Native chat pieces → ``chat.completion.chunk`` objects, as Ollama's stream writer does."""

    def __init__(self, cid: str, created: int, model: str, options: StreamOptions | None) -> None:
        self.cid = cid
        self.created = created
        self.model = model
        self.include_usage = bool(options and options.include_usage)
        self.first_sent = False
        self.tool_call_sent = False

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> OpenAIObject:
        return {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def add(self, p: Piece) -> list[OpenAIObject]:
        out: list[OpenAIObject] = []
        content, thinking = p.text, p.thinking
        trailer = p.done and self.first_sent and not (content or thinking or p.calls)
        trailer = trailer and not p.logprobs
        if not trailer:
            role = {"role": "assistant"} if not self.first_sent else {}
            if thinking and (content or p.calls):
                out.append(self._chunk({**role, "reasoning": thinking}, None))
                role, thinking = {}, ""
            delta: dict[str, Any] = {**role, "content": content}
            if thinking:
                delta["reasoning"] = thinking
            if p.calls:
                delta["tool_calls"] = tool_calls(p.calls)
                self.tool_call_sent = True
            out.append(self._chunk(delta, None))
            if p.logprobs:
                out[-1]["choices"][0]["logprobs"] = chat_logprobs(p.logprobs)
            self.first_sent = True
        if p.done:
            out.append(self._chunk({}, finish_reason(p.done_reason, self.tool_call_sent)))
            if self.include_usage:
                final = self._chunk({}, None)
                final["choices"] = []
                final["usage"] = usage(p.usage)
                out.append(final)
        return out


def _completion(
    cid: str,
    created: int,
    model: str,
    p: Piece,
    text: str,
    counts: Usage | None,
    logprobs: list[dict[str, Any]] | None = None,
    offset: int = 0,
) -> OpenAIObject:
    out: OpenAIObject = {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"text": text, "index": 0, "finish_reason": p.done_reason}],
    }
    if logprobs:
        out["choices"][0]["logprobs"] = completion_logprobs(logprobs, offset)
    if counts is not None:
        out["usage"] = usage(counts)
    return out


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
    merged["choices"] = [
        {**choice, "index": i} for i, obj in enumerate(objects) for choice in obj["choices"]
    ]
    completion = sum(int(o["usage"]["completion_tokens"]) for o in objects)
    prompt = int(merged["usage"]["prompt_tokens"])
    merged["usage"] = usage(Usage(prompt, completion))
    return merged


async def chat(ctx: ServerContext, req: ChatCompletionRequest) -> AsyncIterator[OpenAIObject]:
    """``/v1/chat/completions``: one ``chat.completion``, or the stream's chunks."""
    cid, created = new_id("chatcmpl"), int(time.time())
    n = choices_wanted(req.n, req.stream)
    call = translate.chat_request(req)

    def run() -> AsyncIterator[dict[str, Any]]:
        return generate_work.chat(ctx, call.request, require_tools=call.require_tools)

    if not req.stream:
        answers = []
        for _ in range(n):  # one after another: each takes the model's slot in turn
            whole = answer([piece(chunk) async for chunk in run()])
            answers.append(chat_completion(cid, created, req.model, whole))
        yield _several(answers)
        return
    writer = ChatChunks(cid, created, req.model, req.stream_options)
    async for chunk in run():
        for obj in writer.add(piece(chunk)):
            yield obj


async def completions(ctx: ServerContext, req: CompletionRequest) -> AsyncIterator[OpenAIObject]:
    """``/v1/completions``: one ``text_completion``, or the stream's chunks."""
    cid, created = new_id("cmpl"), int(time.time())
    n = choices_wanted(req.n, req.stream)
    native_req = translate.completion_request(req)
    if not req.stream:
        answers = []
        for _ in range(n):
            pieces = [piece(chunk) async for chunk in generate_work.generate(ctx, native_req)]
            whole = answer(pieces)
            answers.append(
                _completion(
                    cid, created, req.model, pieces[-1], whole.text, whole.usage, whole.logprobs
                )
            )
        yield _several(answers)
        return
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    offset = 0
    async for chunk in generate_work.generate(ctx, native_req):
        p = piece(chunk)
        yield _completion(cid, created, req.model, p, p.text, None, p.logprobs, offset)
        offset += sum(len(e["token"]) for e in p.logprobs)
        if p.done and include_usage:
            final = _completion(cid, created, req.model, p, "", p.usage)
            final["choices"] = []
            yield final


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embedding_list(model: str, result: Mapping[str, Any], encoding_format: str | None) -> Any:
    as_base64 = (encoding_format or "").lower() == "base64"
    data = [
        {"object": "embedding", "embedding": _base64(v) if as_base64 else v, "index": i}
        for i, v in enumerate(result.get("embeddings") or [])
    ]
    count = int(result.get("prompt_eval_count") or 0)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": count, "total_tokens": count},
    }


async def embeddings(ctx: ServerContext, req: EmbeddingRequest) -> AsyncIterator[OpenAIObject]:
    """``/v1/embeddings``: the vectors as floats or base64 (little-endian float32)."""
    result = await embed_work.embed(ctx, translate.embed_request(req))
    yield embedding_list(req.model, result, req.encoding_format)


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


async def list_models(ctx: ServerContext) -> OpenAIObject:
    tags = await asyncio.to_thread(manage.tags, ctx)
    data = [_model_object(m["model"], m.get("modified_at")) for m in tags["models"]]
    return {"object": "list", "data": data}


async def retrieve_model(ctx: ServerContext, name: str) -> OpenAIObject:
    model = await asyncio.to_thread(ctx.catalog.open, name)
    return _model_object(name, model.view.modified)

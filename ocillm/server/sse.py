"""Responses of the OpenAI-compatible routes: Server-Sent Events, or one JSON body.

:class:`OpenAIResponse` takes an async iterator of OpenAI objects (dicts). Streamed, each becomes
``data: {json}\\n\\n`` and the stream ends with ``data: [DONE]\\n\\n``; not streamed, the iterator
yields exactly one object, the body. An error raised before anything was sent is answered with
its real status and OpenAI's error shape; one raised mid-stream becomes a final
``data: {"error": {...}}`` event (the status line is already sent), which OpenAI's clients raise.

As with NDJSON, the client's connection is watched: when it closes, the producer is cancelled,
which frees the runner slot and stops the generation.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Send

from ocillm.server.errors import openai_error, openai_error_body, status_and_message
from ocillm.server.streaming import WatchedResponse

EVENT_STREAM = "text/event-stream"
JSON = "application/json"
DONE = b"data: [DONE]\n\n"


def event(data: Any) -> bytes:
    return (
        b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


class OpenAIResponse(WatchedResponse):
    def __init__(self, objects: AsyncIterator[dict[str, Any]], *, stream: bool) -> None:
        super().__init__(status_code=200, media_type=EVENT_STREAM if stream else JSON)
        self.objects = objects
        self.stream = stream

    async def _whole(self, send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _body(self, send: Send, data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})

    async def _produce(self, send: Send) -> None:
        it = aiter(self.objects)
        try:
            try:
                first = await anext(it)
            except StopAsyncIteration:
                first = None
            except Exception as exc:
                status, message = status_and_message(exc)
                await self._whole(send, status, openai_error_body(status, message))
                return
            if not self.stream:
                body = json.dumps(first or {}, ensure_ascii=False, separators=(",", ":"))
                await self._whole(send, 200, body.encode())
                return
            headers = [
                (b"content-type", EVENT_STREAM.encode()),
                (b"cache-control", b"no-cache"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                if first is not None:
                    await self._body(send, event(first))
                async for obj in it:
                    await self._body(send, event(obj))
                await self._body(send, DONE)
            except Exception as exc:
                status, message = status_and_message(exc)
                await self._body(send, event(openai_error(status, message)))
            await send({"type": "http.response.body", "body": b""})
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

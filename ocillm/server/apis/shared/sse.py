"""The APIs' responses: Server-Sent Events, or one JSON body, each in its API's dialect.

:class:`EventStream` takes an async iterator of objects (dicts). Streamed, each becomes an event
(``data: {json}`` for OpenAI's chat and completions; ``event: <type>`` then ``data:`` for the
Anthropic and Responses APIs, whose objects name their ``type``), and the stream ends with the
dialect's terminator (OpenAI's ``data: [DONE]``, or nothing). Not streamed, the iterator yields
exactly one object, the body. An error raised before anything was sent is answered with its real
status and the dialect's error object; one raised mid-stream becomes the dialect's error event.

As with NDJSON, the client's connection is watched: when it closes, the producer is cancelled,
which frees the runner slot and stops the generation.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Send

from ocillm.server.errors import status_and_message
from ocillm.server.streaming import WatchedResponse

EVENT_STREAM = "text/event-stream"
JSON = "application/json"
OpenAIObject = dict[str, Any]


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Dialect:
    #: the error object for a status and message (also the whole body of an early error)
    error: Callable[[int, str], OpenAIObject]
    #: ``event: <the object's type>`` lines before each ``data:`` line
    named: bool = False
    #: written after the last event
    end: bytes = b""

    def frame(self, data: OpenAIObject) -> bytes:
        head = f"event: {data.get('type', 'error')}\n".encode() if self.named else b""
        return head + b"data: " + dumps(data) + b"\n\n"


class EventStream(WatchedResponse):
    def __init__(
        self, objects: AsyncIterator[OpenAIObject], *, stream: bool, dialect: Dialect
    ) -> None:
        super().__init__(status_code=200, media_type=EVENT_STREAM if stream else JSON)
        self.objects = objects
        self.stream = stream
        self.dialect = dialect

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
                await self._whole(send, status, dumps(self.dialect.error(status, message)))
                return
            if not self.stream:
                await self._whole(send, 200, dumps(first or {}))
                return
            headers = [
                (b"content-type", EVENT_STREAM.encode()),
                (b"cache-control", b"no-cache"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                if first is not None:
                    await self._body(send, self.dialect.frame(first))
                async for obj in it:
                    await self._body(send, self.dialect.frame(obj))
                if self.dialect.end:
                    await self._body(send, self.dialect.end)
            except Exception as exc:
                status, message = status_and_message(exc)
                await self._body(send, self.dialect.frame(self.dialect.error(status, message)))
            await send({"type": "http.response.body", "body": b""})
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

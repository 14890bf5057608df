"""NDJSON streaming as Ollama does it, and cancellation when the client goes away.

A route hands :class:`NDJSONResponse` an async iterator of chunks (dicts). An error raised before
the first chunk is answered with its real status; one raised later becomes a final
``{"error": ...}`` line (the status line is already sent). With ``stream: false`` the chunks are
merged into one object (``merge``; by default the last chunk, as pull/push/create do).

While the response is produced, the client's connection is watched: when it closes, the
producer is cancelled at once, which leaves the scheduler's queue or frees the runner slot and
stops the runner's generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ocillm.server.errors import error_body, status_and_message

Chunk = dict[str, Any]
Merge = Callable[[list[Chunk]], Chunk]

NDJSON = "application/x-ndjson"
JSON = "application/json; charset=utf-8"


def last_chunk(chunks: list[Chunk]) -> Chunk:
    return chunks[-1] if chunks else {}


def dumps(chunk: Chunk) -> bytes:
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the client has gone (the request body was already read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class WatchedResponse(Response, ABC):
    """A response written by ``_produce`` while the client is watched: when the client goes
    away, the production (and the generation behind it) is cancelled at once."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, watcher):
                if not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await producer

    @abstractmethod
    async def _produce(self, send: Send) -> None:
        """Send the whole response through ``send``."""


class NDJSONResponse(WatchedResponse):
    def __init__(
        self,
        chunks: AsyncIterator[Chunk],
        *,
        stream: bool = True,
        merge: Merge = last_chunk,
    ) -> None:
        super().__init__(status_code=200, media_type=NDJSON)
        self.chunks = chunks
        self.stream = stream
        self.merge = merge

    async def _start(self, send: Send, status: int, media_type: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", media_type.encode())],
            }
        )

    async def _whole(self, send: Send, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _produce(self, send: Send) -> None:
        it = aiter(self.chunks)
        try:
            try:
                first = await anext(it)
            except StopAsyncIteration:
                await self._whole(send, 200, b"{}")
                return
            except Exception as exc:
                status, message = status_and_message(exc)
                await self._whole(send, status, error_body(message))
                return
            if not self.stream:
                collected = [first]
                try:
                    async for chunk in it:
                        collected.append(chunk)
                except Exception as exc:
                    status, message = status_and_message(exc)
                    await self._whole(send, status, error_body(message))
                    return
                await self._whole(send, 200, dumps(self.merge(collected)))
                return
            await self._start(send, 200, NDJSON)
            await send(
                {"type": "http.response.body", "body": dumps(first) + b"\n", "more_body": True}
            )
            try:
                async for chunk in it:
                    body = dumps(chunk) + b"\n"
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            except Exception as exc:
                _, message = status_and_message(exc)
                await send(
                    {
                        "type": "http.response.body",
                        "body": error_body(message) + b"\n",
                        "more_body": True,
                    }
                )
            await send({"type": "http.response.body", "body": b""})
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

"""Responses kept in memory, so ``previous_response_id`` and ``GET /v1/responses/{id}`` work.

A response made with ``store: true`` (OpenAI's default) is kept with the conversation it ended
(its input and output as native messages, without the instructions: OpenAI does not carry them
over) for :data:`TTL_SECONDS`, at most :data:`MAX_RESPONSES` of them, the oldest dropped first.
Nothing is written to disk; a restart forgets them all.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ocillm.server.errors import ApiError

MAX_RESPONSES = 1024
TTL_SECONDS = 3600.0


@dataclass(frozen=True)
class Stored:
    response: dict[str, Any]
    conversation: list[dict[str, Any]]
    expires: float


class ResponseStore:
    def __init__(
        self,
        limit: int = MAX_RESPONSES,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.ttl, self.clock = limit, ttl, clock
        self._items: OrderedDict[str, Stored] = OrderedDict()

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, v in self._items.items() if v.expires <= now]:
            del self._items[key]

    def put(self, response: dict[str, Any], conversation: list[dict[str, Any]]) -> None:
        self._expire()
        self._items[str(response["id"])] = Stored(response, conversation, self.clock() + self.ttl)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> Stored:
        self._expire()
        found = self._items.get(response_id)
        if found is None:
            raise ApiError(404, f"Response with id '{response_id}' not found.")
        return found

    def delete(self, response_id: str) -> None:
        self.get(response_id)
        del self._items[response_id]

"""Stored responses are bounded: in number (oldest dropped first) and in time."""

from __future__ import annotations

import pytest

from ocillm.server.apis.responses.store import ResponseStore
from ocillm.server.errors import ApiError


def test_the_oldest_go_first_and_expired_ones_are_gone() -> None:
    now = [0.0]
    store = ResponseStore(limit=2, ttl=10, clock=lambda: now[0])
    for rid in ("a", "b", "c"):
        store.put({"id": rid}, [{"role": "user", "content": rid}])
    with pytest.raises(ApiError) as err:
        store.get("a")
    assert err.value.http_status == 404 and str(err.value) == "Response with id 'a' not found."
    assert store.get("c").conversation == [{"role": "user", "content": "c"}]
    now[0] = 10.0
    with pytest.raises(ApiError):
        store.get("c")


def test_delete_forgets() -> None:
    store = ResponseStore()
    store.put({"id": "x"}, [])
    store.delete("x")
    with pytest.raises(ApiError):
        store.delete("x")

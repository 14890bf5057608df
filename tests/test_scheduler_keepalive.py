"""Keep-alive (per request and default), Ollama durations, unload, ps()."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from scheduler_support import SMALL_SHAPE, run

from ocillm.config import Settings
from ocillm.errors import UsageError
from ocillm.gpu import FakeDiscovery
from ocillm.scheduler import (
    LoadRequest,
    Scheduler,
    StubRunnerFactory,
    parse_go_duration,
    parse_keep_alive,
)

SHAPE = SMALL_SHAPE


def request(name: str = "m", **kw: Any) -> LoadRequest:
    return LoadRequest(model_path=Path(f"/models/{name}.gguf"), name=name, shape=SHAPE, **kw)


async def use(s: Scheduler, name: str = "m", **kw: Any) -> None:
    async with s.acquire(name, request(name, **kw)):
        pass


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("1h30m", 5400), ("300ms", 0.3), ("1.5h", 5400), ("0", 0), ("-1m", -60)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (0, 0.0),
        (30, 30.0),
        (1.5, 1.5),
        ("10m", 600.0),
        ("120", 120.0),
        (-1, math.inf),
        ("-1m", math.inf),
        ("", None),
    ],
)
def test_keep_alive_values(value: Any, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "m", "1x", "--5m"])
def test_bad_durations_say_so(bad: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_keep_alive(bad)


def test_settings_give_the_scheduler_its_limits(tmp_path: Path) -> None:
    env = {
        "OCILLM_HOME": str(tmp_path),
        "OCILLM_KEEP_ALIVE": "-1",
        "OCILLM_MAX_QUEUE": "7",
        "OCILLM_NUM_PARALLEL": "3",
        "OCILLM_MAX_LOADED_MODELS": "2",
        "OCILLM_LOAD_TIMEOUT": "90s",
    }
    s = Scheduler.from_settings(Settings.from_env(env), FakeDiscovery(), StubRunnerFactory())
    assert (s.max_queue, s.num_parallel, s.max_loaded_models) == (7, 3, 2)
    assert s.keep_alive == math.inf and s.load_timeout == 90


def test_an_idle_model_unloads_when_its_keep_alive_expires() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery(), factory, keep_alive=0.2)
        await use(s)
        (row,) = s.ps()
        assert row.expires_at is not None and row.expires_at > datetime.now(timezone.utc)
        await asyncio.sleep(0.1)
        assert len(s.ps()) == 1
        await asyncio.sleep(0.3)
        assert s.ps() == [] and factory.started[0].stopped
        await s.shutdown()

    run(main())


def test_a_new_request_resets_the_keep_alive_timer() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery(), factory, keep_alive=0.3)
        await use(s)
        await asyncio.sleep(0.2)
        await use(s)
        await asyncio.sleep(0.2)
        assert len(s.ps()) == 1  # 0.4 s after the first request, 0.2 s after the second
        await asyncio.sleep(0.25)
        assert s.ps() == []
        await s.shutdown()

    run(main())


def test_keep_alive_zero_unloads_right_after_the_request() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery(), factory)
        await use(s, keep_alive=0.0)
        await asyncio.sleep(0.01)
        assert s.ps() == [] and factory.started[0].stopped
        await s.shutdown()

    run(main())


def test_negative_keep_alive_keeps_the_model_forever() -> None:
    async def main() -> None:
        s = Scheduler(FakeDiscovery(), StubRunnerFactory(), keep_alive=0.05)
        await use(s, keep_alive=parse_keep_alive(-1))
        await asyncio.sleep(0.15)
        (row,) = s.ps()
        assert row.expires_at is None
        await s.shutdown()

    run(main())


def test_a_requests_keep_alive_sticks_to_the_runner() -> None:
    async def main() -> None:
        s = Scheduler(FakeDiscovery(), StubRunnerFactory(), keep_alive=0.05)
        await use(s, keep_alive=math.inf)
        await use(s)  # no keep_alive: the runner keeps "forever"
        await asyncio.sleep(0.15)
        assert len(s.ps()) == 1
        await s.shutdown()

    run(main())


def test_unload_stops_an_idle_model_now_and_a_busy_one_after_its_request() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery(), factory)
        await use(s, "a")
        assert await s.unload("a") is True
        assert s.ps() == [] and factory.started[0].stopped
        assert await s.unload("a") is False

        async with s.acquire("b", request("b")):
            assert await s.unload("b") is True
            assert len(s.ps()) == 1  # still serving
        await asyncio.sleep(0.01)
        assert s.ps() == [] and factory.started[1].stopped
        await s.shutdown()

    run(main())


def test_ps_lists_the_latest_expiry_first() -> None:
    async def main() -> None:
        s = Scheduler(FakeDiscovery(), StubRunnerFactory(), keep_alive=60)
        await use(s, "short", keep_alive=10.0)
        await use(s, "long", keep_alive=100.0)
        await use(s, "forever", keep_alive=math.inf)
        rows = s.ps()
        assert [r.name for r in rows] == ["forever", "long", "short"]
        assert all(r.size > 0 and r.size_vram == 0 and r.processor == "100% CPU" for r in rows)
        assert all(r.pid is not None and r.active_requests == 0 for r in rows)
        await s.shutdown()

    run(main())

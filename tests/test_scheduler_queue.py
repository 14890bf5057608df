"""The scheduler's queue: slots per model, the queue bound, priority, cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from scheduler_support import SMALL_SHAPE, run

from ocillm.gpu import FakeDiscovery
from ocillm.runner import CompletionRequest
from ocillm.scheduler import LoadRequest, QueueFull, Scheduler, SchedulerClosed, StubRunnerFactory

SHAPE = SMALL_SHAPE


def request(name: str = "m", **kw: Any) -> LoadRequest:
    return LoadRequest(model_path=Path(f"/models/{name}.gguf"), name=name, shape=SHAPE, **kw)


def scheduler(**kw: Any) -> tuple[Scheduler, StubRunnerFactory]:
    factory = StubRunnerFactory()
    return Scheduler(FakeDiscovery(), factory, **kw), factory


async def hold(
    s: Scheduler, req: LoadRequest, release: asyncio.Event, log: list[str], tag: str
) -> None:
    async with s.acquire(req.name, req):
        log.append(tag)
        await release.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_request_gets_a_runner_that_answers() -> None:
    async def main() -> str:
        s, factory = scheduler()
        async with s.acquire("m", request()) as runner:
            out = await runner.complete(CompletionRequest(prompt="hello there"))
        await s.shutdown()
        assert len(factory.started) == 1
        return out.content

    assert run(main()) == "hello there"


def test_requests_for_a_loaded_model_share_one_runner() -> None:
    async def main() -> None:
        s, factory = scheduler(num_parallel=2)
        release = asyncio.Event()
        log: list[str] = []
        tasks = [asyncio.create_task(hold(s, request(), release, log, str(i))) for i in range(3)]
        await asyncio.sleep(0.05)
        assert len(log) == 2  # two slots: the third waits
        assert s.pending == 1
        release.set()
        await asyncio.gather(*tasks)
        assert len(log) == 3 and len(factory.started) == 1
        await s.shutdown()

    run(main())


def test_a_full_queue_answers_ollamas_503_text() -> None:
    async def main() -> None:
        s, _ = scheduler(max_queue=2)
        release = asyncio.Event()
        log: list[str] = []
        busy = asyncio.create_task(hold(s, request(), release, log, "busy"))
        await asyncio.sleep(0.05)
        waiting = [asyncio.create_task(hold(s, request(), release, log, f"w{i}")) for i in range(2)]
        await settle()
        assert s.pending == 2
        with pytest.raises(QueueFull) as err:
            async with s.acquire("m", request()):
                pass
        assert str(err.value) == (
            "server busy, please try again.  maximum pending requests exceeded"
        )
        assert err.value.http_status == 503
        release.set()
        await asyncio.gather(busy, *waiting)
        await s.shutdown()

    run(main())


def test_higher_priority_is_served_first_then_fifo() -> None:
    async def main() -> list[str]:
        s, _ = scheduler()
        gate = asyncio.Event()
        order: list[str] = []
        first = asyncio.create_task(hold(s, request(), gate, order, "first"))
        await asyncio.sleep(0.05)
        done = asyncio.Event()
        done.set()
        tasks = []
        for tag, prio in [("low-a", 0), ("high", 5), ("low-b", 0), ("mid", 1)]:
            tasks.append(asyncio.create_task(hold(s, request(priority=prio), done, order, tag)))
            await settle()
        gate.set()
        await asyncio.gather(first, *tasks)
        await s.shutdown()
        return order

    assert run(main()) == ["first", "high", "mid", "low-a", "low-b"]


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    async def main() -> None:
        s, _ = scheduler()
        gate = asyncio.Event()
        log: list[str] = []
        busy = asyncio.create_task(hold(s, request(), gate, log, "busy"))
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(hold(s, request(), gate, log, "cancelled"))
        await settle()
        assert s.pending == 1
        waiter.cancel()
        await settle()
        assert s.pending == 0
        gate.set()
        await busy
        assert log == ["busy"]
        await s.shutdown()

    run(main())


def test_a_cancelled_request_frees_its_slot_at_once() -> None:
    async def main() -> None:
        factory = StubRunnerFactory(token_delay=0.01)
        s = Scheduler(FakeDiscovery(), factory)

        async def stream_forever() -> None:
            async with s.acquire("m", request()) as runner:
                async for _ in runner.completion(CompletionRequest(prompt="a " * 1000)):
                    pass

        streaming = asyncio.create_task(stream_forever())
        await asyncio.sleep(0.1)
        stub = factory.started[0]
        assert stub.active == 1
        streaming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await streaming
        assert stub.active == 0 and stub.cancelled == 1
        # the slot is free: the next request gets the same runner without waiting
        async with s.acquire("m", request()) as runner:
            assert runner is stub
        await s.shutdown()

    run(main())


def test_after_shutdown_requests_are_refused() -> None:
    async def main() -> None:
        s, factory = scheduler()
        async with s.acquire("m", request()):
            pass
        await s.shutdown()
        assert all(r.stopped for r in factory.started)
        with pytest.raises(SchedulerClosed):
            async with s.acquire("m", request()):
                pass

    run(main())


def test_shutdown_fails_waiting_requests() -> None:
    async def main() -> None:
        s, _ = scheduler()
        gate = asyncio.Event()
        log: list[str] = []
        busy = asyncio.create_task(hold(s, request(), gate, log, "busy"))
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(hold(s, request(), gate, log, "waiter"))
        await settle()
        await s.shutdown()
        with pytest.raises(SchedulerClosed):
            await waiter
        gate.set()
        await busy

    run(main())

"""Loading, placement, eviction, reloads and dead runners, on fake inventories and stub runners."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, TypeVar

import pytest
from scheduler_support import LLAMA_SHAPE, run

from ocillm.gpu import FakeDiscovery, SystemMemory, fake_gpu
from ocillm.runner import CompletionRequest, RunnerError, RunnerLoadError
from ocillm.scheduler import (
    InsufficientMemory,
    LoadOptions,
    LoadRequest,
    Scheduler,
    StubRunnerFactory,
)

T = TypeVar("T")
MiB = 1 << 20
GiB = 1 << 30

#: ~1.3 GB of weights; about 1.8 GiB fully on a GPU with a 2048-token context.
SHAPE = LLAMA_SHAPE
OPTS = LoadOptions(num_ctx=2048)


def request(name: str = "m", **kw: Any) -> LoadRequest:
    kw.setdefault("options", OPTS)
    return LoadRequest(model_path=Path(f"/models/{name}.gguf"), name=name, shape=SHAPE, **kw)


async def use(s: Scheduler, name: str, **kw: Any) -> None:
    async with s.acquire(name, request(name, **kw)) as runner:
        await runner.complete(CompletionRequest(prompt="hi"))


def test_one_gpu_loads_the_whole_model_on_it() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([fake_gpu(0, 8 * GiB)]), factory)
        await use(s, "a")
        spec = factory.started[0].spec
        assert spec.n_gpu_layers == SHAPE.block_count + 1
        assert spec.gpu_library == "cuda" and spec.gpu_indices == (0,)
        assert spec.env() == {"CUDA_VISIBLE_DEVICES": "0"}
        (row,) = s.ps()
        assert row.processor == "100% GPU" and row.size == row.size_vram > 0
        assert row.gpu_ids == ("GPU-fake-0",) and row.context_length == 2048
        await s.shutdown()

    run(main())


def test_two_gpus_place_two_models_on_different_gpus() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([fake_gpu(0, 3 * GiB), fake_gpu(1, 3 * GiB)]), factory)
        await use(s, "a")
        await use(s, "b")
        gpus = [r.spec.gpu_indices for r in factory.started]
        assert sorted(gpus) == [(0,), (1,)]
        assert len(s.ps()) == 2 and all(r.processor == "100% GPU" for r in s.ps())
        await s.shutdown()

    run(main())


def test_without_gpus_models_run_on_the_cpu() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([]), factory)
        await use(s, "a")
        assert factory.started[0].spec.n_gpu_layers == 0
        assert factory.started[0].spec.env() == {}
        (row,) = s.ps()
        assert row.processor == "100% CPU" and row.size_vram == 0
        await s.shutdown()

    run(main())


def test_num_gpu_zero_runs_on_the_cpu_with_the_gpus_hidden() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([fake_gpu(0, 8 * GiB)]), factory)
        await use(s, "a", options=LoadOptions(num_ctx=2048, num_gpu=0))
        spec = factory.started[0].spec
        assert spec.n_gpu_layers == 0
        assert spec.env() == {"CUDA_VISIBLE_DEVICES": "-1"}
        assert s.ps()[0].processor == "100% CPU"
        await s.shutdown()

    run(main())


def test_a_small_gpu_gets_a_partial_offload_when_alone() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([fake_gpu(0, 1 * GiB)]), factory)
        await use(s, "a")
        layers = factory.started[0].spec.n_gpu_layers
        assert 0 < layers < SHAPE.block_count
        assert s.ps()[0].processor.endswith("CPU/GPU")
        await s.shutdown()

    run(main())


def test_a_model_that_fits_nowhere_fails_with_the_memory_it_needs() -> None:
    async def main() -> None:
        small = SystemMemory(total=512 * MiB, free=256 * MiB)
        s = Scheduler(FakeDiscovery([], system=small), StubRunnerFactory())
        with pytest.raises(InsufficientMemory, match="model requires more system memory"):
            await use(s, "a")
        assert s.ps() == []
        await s.shutdown()

    run(main())


def test_a_second_model_that_does_not_fit_evicts_the_idle_one() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([fake_gpu(0, 3 * GiB)]), factory)
        await use(s, "a")
        await use(s, "b")
        a, b = factory.started
        assert a.stopped and not b.stopped
        assert [r.name for r in s.ps()] == ["b"]
        await s.shutdown()

    run(main())


def test_max_loaded_models_evicts_the_least_recently_used() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([]), factory, max_loaded_models=2)
        await use(s, "a")
        await use(s, "b")
        await use(s, "a")  # b is now the least recently used
        await use(s, "c")
        assert sorted(r.name for r in s.ps()) == ["a", "c"]
        assert [r.spec.model.stem for r in factory.started if r.stopped] == ["b"]
        await s.shutdown()

    run(main())


def test_auto_max_loaded_models_is_three_per_gpu_or_three_on_cpu() -> None:
    async def main() -> None:
        s = Scheduler(FakeDiscovery([]), StubRunnerFactory())
        for name in "abcd":
            await use(s, name)
        assert len(s.ps()) == 3
        await s.shutdown()

    run(main())


def test_a_new_model_waits_for_a_busy_one_to_finish_before_evicting_it() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([]), factory, max_loaded_models=1)
        gate = asyncio.Event()

        async def busy() -> None:
            async with s.acquire("a", request("a")):
                await gate.wait()

        first = asyncio.create_task(busy())
        await asyncio.sleep(0.05)
        second = asyncio.create_task(use(s, "b"))
        await asyncio.sleep(0.05)
        assert not second.done() and len(factory.started) == 1
        gate.set()
        await asyncio.gather(first, second)
        assert [r.name for r in s.ps()] == ["b"]
        await s.shutdown()

    run(main())


def test_other_runner_options_reload_the_model() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([]), factory)
        await use(s, "a")
        await use(s, "a", options=LoadOptions(num_ctx=2048, num_gpu=-7))  # num_gpu<0 is equal
        assert len(factory.started) == 1
        await use(s, "a", options=LoadOptions(num_ctx=1024))
        assert len(factory.started) == 2 and factory.started[0].stopped
        assert s.ps()[0].context_length == 1024
        await s.shutdown()

    run(main())


def test_a_dead_runner_is_replaced_by_the_next_request() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([]), factory)
        await use(s, "a")
        factory.started[0].kill()
        await use(s, "a")
        assert len(factory.started) == 2
        assert factory.started[0].stopped and factory.started[1].is_alive()
        assert s.ps()[0].pid == factory.started[1].pid
        await s.shutdown()

    run(main())


def test_a_runner_dying_mid_request_fails_that_request_only() -> None:
    async def main() -> None:
        factory = StubRunnerFactory(token_delay=0.01)
        s = Scheduler(FakeDiscovery([]), factory)
        with pytest.raises(RunnerError, match="terminated"):
            async with s.acquire("a", request("a")) as runner:
                async for _ in runner.completion(CompletionRequest(prompt="x " * 100)):
                    factory.started[0].kill()
        factory.token_delay = 0
        await use(s, "a")
        assert len(factory.started) == 2
        await s.shutdown()

    run(main())


def test_a_failed_load_reaches_the_request_and_the_next_one_retries() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        factory.fail_next = "runner process has terminated: exit status 1: error: bad magic"
        s = Scheduler(FakeDiscovery([]), factory)
        with pytest.raises(RunnerLoadError, match="bad magic"):
            await use(s, "a")
        await use(s, "a")
        assert len(factory.started) == 1
        await s.shutdown()

    run(main())


def test_the_load_timeout_is_enforced() -> None:
    async def main() -> None:
        factory = StubRunnerFactory(load_delay=5)
        s = Scheduler(FakeDiscovery([]), factory, load_timeout=0.1)
        with pytest.raises(RunnerLoadError, match="timed out"):
            await use(s, "a")
        await s.shutdown()

    run(main())


def test_requests_for_a_loaded_model_are_not_held_up_by_another_models_load() -> None:
    async def main() -> None:
        factory = StubRunnerFactory()
        s = Scheduler(FakeDiscovery([]), factory)
        await use(s, "a")
        factory.load_delay = 0.5
        loading = asyncio.create_task(use(s, "b"))
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await use(s, "a")
        assert loop.time() - start < 0.2
        await loading
        await s.shutdown()

    run(main())

"""The scheduler with real runner processes on the tiny model (no GPU): load, serve, unload."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ocillm.gpu import FakeDiscovery
from ocillm.runner import CompletionRequest, RunnerProcess
from ocillm.scheduler import LoadOptions, LoadRequest, ProcessRunnerFactory, Scheduler


def test_real_runners_load_serve_reload_and_unload(tiny_gguf: Path) -> None:
    async def main() -> int:
        s = Scheduler(FakeDiscovery([]), ProcessRunnerFactory(), keep_alive=60)
        req = LoadRequest(model_path=tiny_gguf, name="tiny", options=LoadOptions(num_ctx=128))
        async with s.acquire("tiny", req) as runner:
            assert isinstance(runner, RunnerProcess)
            out = await runner.complete(
                CompletionRequest(prompt="hello", num_predict=4, temperature=0)
            )
            assert out.eval_count == 4
            first_pid = runner.pid
        (row,) = s.ps()
        assert row.context_length == 128 and row.processor == "100% CPU"
        assert row.size > tiny_gguf.stat().st_size

        assert first_pid is not None
        os.kill(first_pid, 9)  # a crash: the next request gets a fresh runner
        await asyncio.sleep(0.1)
        async with s.acquire("tiny", req) as runner:
            assert runner.pid != first_pid
            out = await runner.complete(
                CompletionRequest(prompt="hello", num_predict=2, temperature=0)
            )
            assert out.eval_count == 2
            pid = runner.pid
        assert pid is not None
        assert await s.unload("tiny")
        assert s.ps() == []
        await s.shutdown()
        return pid

    pid = asyncio.run(asyncio.wait_for(main(), 60))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

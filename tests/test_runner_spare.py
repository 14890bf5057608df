"""The spare runner: a process started before its model is known, so a cold load costs only the load."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from ocillm.runner import RunnerSpec
from ocillm.runner.process import RunnerProcess, SpareProcess
from ocillm.runner.protocol import CompletionRequest
from ocillm.scheduler import ProcessRunnerFactory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_the_factory_hands_a_load_to_its_spare_and_starts_the_next(tiny_gguf: Path) -> None:
    async def scenario() -> None:
        factory = ProcessRunnerFactory()
        await factory.prestart()
        assert factory._spare is not None
        spare = await factory._spare
        runner = await factory.start(RunnerSpec(model=tiny_gguf, n_ctx=128), load_timeout=60)
        try:
            assert runner.pid == spare.proc.pid  # the spare became the runner
            out = await runner.complete(CompletionRequest(prompt="hi", num_predict=4, seed=1))
            assert out.eval_count > 0
            assert factory._spare is not None
            replacement = await factory._spare
            assert replacement.proc.pid != spare.proc.pid and _alive(replacement.proc.pid)
        finally:
            await runner.stop()
            await factory.close()
        assert factory._spare is None
        await asyncio.sleep(0.2)
        assert not _alive(replacement.proc.pid)

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_spare_for_other_gpus_is_not_used(tiny_gguf: Path) -> None:
    async def scenario() -> None:
        spare = await SpareProcess.spawn({"CUDA_VISIBLE_DEVICES": "0"})
        runner = await RunnerProcess.start(
            RunnerSpec(model=tiny_gguf, n_ctx=128), load_timeout=60, spare=spare
        )
        try:
            assert runner.pid != spare.proc.pid
            assert spare.proc.returncode is not None  # discarded, not leaked
        finally:
            await runner.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_spare_whose_daemon_goes_away_exits_by_itself() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocillm.runner", "--spare"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0

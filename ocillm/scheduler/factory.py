"""The runner-factory seam: the scheduler asks it for a runner; real processes or stubs answer.

``ProcessRunnerFactory`` starts ``python -m ocillm.runner`` children. ``StubRunnerFactory`` makes
``StubRunner``s, which need no model: they echo the prompt's words back, one per token, so the
scheduler (and later the server) can be tested without llama.cpp.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping

from ocillm.runner.base import Runner
from ocillm.runner.errors import RunnerError, RunnerLoadError
from ocillm.runner.process import RunnerProcess, SpareProcess
from ocillm.runner.protocol import (
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from ocillm.runner.spec import RunnerSpec


class RunnerFactory(ABC):
    @abstractmethod
    async def start(self, spec: RunnerSpec, *, load_timeout: float) -> Runner:
        """A loaded, healthy runner for ``spec``; raises ``RunnerLoadError`` otherwise."""

    async def prestart(self) -> None:  # noqa: B027  (an optional hook)
        """Get ready for a first load (the daemon calls it at start-up)."""

    async def close(self) -> None:  # noqa: B027  (an optional hook)
        """Release what the factory holds between loads (the scheduler calls it at shutdown)."""


class ProcessRunnerFactory(RunnerFactory):
    """One ``python -m ocillm.runner`` process per model, over loopback TCP or a unix socket."""

    def __init__(
        self,
        *,
        unix_socket: bool = False,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        spare: bool = True,
        repack: str = "auto",
    ) -> None:
        self.unix_socket = unix_socket
        self.repack = repack  # OCILLM_LLAMA_REPACK, for every runner this factory starts
        self.python = python
        self.env = env
        # One runner process kept started ahead of need (interpreter up, llama.cpp imported), so
        # a cold load pays only for the load itself. Replaced after each use.
        self.keep_spare = spare
        self._spare: asyncio.Task[SpareProcess] | None = None

    async def prestart(self) -> None:
        if self.keep_spare and self._spare is None:
            self._spare = asyncio.ensure_future(
                SpareProcess.spawn({}, python=self.python, env=self.env)
            )

    async def start(self, spec: RunnerSpec, *, load_timeout: float) -> Runner:
        if spec.repack == "auto":
            spec = dataclasses.replace(spec, repack=self.repack)
        spare = await self._take_spare()
        try:
            return await RunnerProcess.start(
                spec,
                load_timeout=load_timeout,
                unix_socket=self.unix_socket,
                python=self.python,
                env=self.env,
                spare=spare,
            )
        finally:
            if self.keep_spare:
                gpu_env = spec.env()
                self._spare = asyncio.ensure_future(
                    SpareProcess.spawn(gpu_env, python=self.python, env=self.env)
                )

    async def _take_spare(self) -> SpareProcess | None:
        task, self._spare = self._spare, None
        if task is None:
            return None
        try:
            return await task
        except OSError:
            return None

    async def close(self) -> None:
        spare = await self._take_spare()
        if spare is not None:
            await spare.discard()


class StubRunner(Runner):
    """A runner without a model. ``kill()`` makes it behave as a crashed process."""

    _next_pid = 100_000

    def __init__(self, spec: RunnerSpec, token_delay: float = 0.0) -> None:
        StubRunner._next_pid += 1
        self._pid = StubRunner._next_pid
        self.spec = spec
        self.token_delay = token_delay
        self.alive = True
        self.stopped = False
        self.active = 0  # completions streaming right now
        self.cancelled = 0  # completions whose consumer went away early

    @property
    def pid(self) -> int | None:
        return self._pid

    def is_alive(self) -> bool:
        return self.alive and not self.stopped

    def kill(self) -> None:
        self.alive = False

    async def health(self) -> bool:
        return self.is_alive()

    async def stop(self) -> None:
        self.stopped = True
        self.alive = False

    def _check(self) -> None:
        if not self.is_alive():
            raise RunnerError("runner process has terminated: killed by SIGKILL")

    async def completion(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        self._check()
        words = (request.prompt or "").split() or ["ok"]
        limit = request.num_predict if request.num_predict > 0 else len(words)
        self.active += 1
        finished = False
        try:
            for i, word in enumerate(words[:limit]):
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                self._check()
                yield CompletionChunk(content=(" " if i else "") + word)
            finished = True
            yield CompletionChunk(
                done=True,
                done_reason="length" if limit < len(words) else "stop",
                prompt_eval_count=len(words),
                eval_count=min(limit, len(words)),
            )
        finally:
            self.active -= 1
            if not finished:
                self.cancelled += 1

    async def tokenize(
        self, content: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        self._check()
        return [len(w) for w in content.split()]

    async def detokenize(self, tokens: list[int]) -> str:
        self._check()
        return " ".join("x" * t for t in tokens)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self._check()
        vectors = [[float(len(text)), 1.0] for text in request.input]
        return EmbeddingResponse(embeddings=vectors, prompt_eval_count=len(request.input))


class StubRunnerFactory(RunnerFactory):
    """Makes ``StubRunner``s and remembers them. Set ``fail_next`` to make the next load fail."""

    def __init__(self, *, load_delay: float = 0.0, token_delay: float = 0.0) -> None:
        self.load_delay = load_delay
        self.token_delay = token_delay
        self.started: list[StubRunner] = []
        self.fail_next: str | None = None

    async def start(self, spec: RunnerSpec, *, load_timeout: float) -> Runner:
        if self.load_delay:
            if 0 < load_timeout < self.load_delay:
                await asyncio.sleep(load_timeout)
                raise RunnerLoadError(f"timed out waiting for the runner to load {spec.model.name}")
            await asyncio.sleep(self.load_delay)
        if self.fail_next is not None:
            message, self.fail_next = self.fail_next, None
            raise RunnerLoadError(message)
        runner = StubRunner(spec, token_delay=self.token_delay)
        self.started.append(runner)
        return runner

    @property
    def running(self) -> list[StubRunner]:
        return [r for r in self.started if not r.stopped]

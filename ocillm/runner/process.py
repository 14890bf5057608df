"""``RunnerProcess``: start ``python -m ocillm.runner``, wait for READY, talk to it, stop it by PID.

The child gets its own session (a Ctrl-C at the daemon's terminal does not reach it; the daemon
unloads it) and a stdin pipe it watches, so it exits by itself if the daemon dies. Its stderr is
kept (the last lines) so a failed load or a crash explains itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import ocillm
from ocillm.runner.base import Runner
from ocillm.runner.client import RunnerClient, RunnerUnreachable
from ocillm.runner.errors import RunnerError, RunnerLoadError
from ocillm.runner.protocol import (
    READY_PREFIX,
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    RerankRequest,
    RerankResponse,
)
from ocillm.runner.spec import RunnerSpec

STDERR_LINES = 40
_ERROR_MARKERS = ("error", "failed", "assert", "panic", "traceback", "exception", "out of memory")
# llama.cpp's own lines arrive tagged with their level (ocillm.runner.llama_loader).
_LLAMA_TAG = "llama.cpp "
_LLAMA_ERROR = "llama.cpp error: "

log = logging.getLogger(__name__)


def _package_root() -> str:
    return str(Path(ocillm.__file__).resolve().parent.parent)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class RunnerProcess(Runner):
    """A started runner process. Use :meth:`start`; then :meth:`stop` when done."""

    def __init__(
        self,
        spec: RunnerSpec,
        proc: asyncio.subprocess.Process,
        client: RunnerClient,
        stderr: deque[str],
        readers: list[asyncio.Task[None]],
        socket_dir: str | None,
    ) -> None:
        self.spec = spec
        self._proc = proc
        self._client = client
        self._stderr = stderr
        self._readers = readers
        self._socket_dir = socket_dir
        self._stopped = False
        #: Whether llama.cpp repacked the weights (extra buffer types), as the runner reported.
        self.extra_buffer_types: bool | None = None
        self._exit_watch = asyncio.ensure_future(self._log_crash())

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        spec: RunnerSpec,
        *,
        load_timeout: float = 300.0,
        unix_socket: bool = False,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        spare: SpareProcess | None = None,
    ) -> RunnerProcess:
        """Spawn the runner (or hand ``spare`` its arguments) and wait until it prints READY (or
        fails, or ``load_timeout`` ends)."""
        argv = spec.argv(python)
        socket_dir = None
        if unix_socket:
            socket_dir = tempfile.mkdtemp(prefix="ocillm-runner-")
            argv += ["--socket", os.path.join(socket_dir, "runner.sock")]
        else:
            argv += ["--port", "0"]
        proc = await spare.hand_over(spec, argv[3:]) if spare is not None else None
        if proc is None:
            proc = await _spawn(argv, _child_env(spec.env(), env))
        stderr: deque[str] = deque(maxlen=STDERR_LINES)
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        readers = [
            asyncio.create_task(_read_stdout(proc, ready)),
            asyncio.create_task(_read_stderr(proc, stderr)),
        ]
        exited = asyncio.ensure_future(proc.wait())
        waited: set[asyncio.Future[Any]] = {ready, exited}
        try:
            done, _ = await asyncio.wait(
                waited,
                timeout=load_timeout if load_timeout > 0 else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if ready not in done:
                if exited in done:
                    await asyncio.sleep(0.05)  # let the stderr reader catch the last lines
                    reason = f"{_describe_exit(proc.returncode)}{_tail(stderr)}"
                    log.error(
                        "runner for %s (pid %s) died while loading: %s",
                        spec.model.name,
                        proc.pid,
                        reason,
                    )
                    raise RunnerLoadError(f"runner process has terminated: {reason}")
                raise RunnerLoadError(
                    f"timed out waiting for the runner to load {spec.model.name} "
                    f"after {load_timeout:g}s{_tail(stderr)}"
                )
        except BaseException:
            await _kill(proc)
            for task in readers:
                task.cancel()
            if socket_dir:
                _remove_dir(socket_dir)
            raise
        finally:
            exited.cancel()
        address = dict(part.split("=", 1) for part in ready.result().split()[1:] if "=" in part)
        if "socket" in address:
            client = RunnerClient(uds=address["socket"])
        else:
            client = RunnerClient(port=int(address["port"]))
        runner = cls(spec, proc, client, stderr, readers, socket_dir)
        runner.extra_buffer_types = {"on": True, "off": False}.get(address.get("repack", ""))
        log.info(
            "runner for %s (pid %s) ready; llama.cpp extra buffer types %s",
            spec.model.name,
            proc.pid,
            address.get("repack", "unknown"),
        )
        return runner

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr)

    async def _log_crash(self) -> None:
        # One error line in the daemon's log per crash, whether or not a request saw it.
        code = await self._proc.wait()
        if self._stopped:
            return
        await asyncio.sleep(0.05)  # let the stderr reader catch the last lines
        log.error(
            "runner for %s (pid %s) crashed: %s%s",
            self.spec.model.name,
            self._proc.pid,
            _describe_exit(code),
            _tail(self._stderr),
        )

    def is_alive(self) -> bool:
        # asyncio's child watcher sets returncode as soon as the process exits.
        return not self._stopped and self._proc.returncode is None

    async def health(self) -> bool:
        if not self.is_alive():
            return False
        try:
            return (await self._client.health()).status == "ok"
        except RunnerError:
            return False

    async def stop(self, grace: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        await _kill(self._proc, grace)
        self._exit_watch.cancel()
        for task in self._readers:
            task.cancel()
        await self._client.aclose()
        if self._socket_dir:
            _remove_dir(self._socket_dir)

    # --- requests -------------------------------------------------------------------------

    async def _dead(self, err: RunnerUnreachable) -> RunnerError:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._proc.wait(), 0.5)
        if self._proc.returncode is None:
            return err
        return RunnerError(
            f"runner process has terminated: {_describe_exit(self._proc.returncode)}"
            f"{_tail(self._stderr)}"
        )

    async def completion(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        stream = self._client.completion(request)
        try:
            async for chunk in stream:
                yield chunk
        except RunnerUnreachable as err:
            raise await self._dead(err) from err
        finally:
            await stream.aclose()

    async def tokenize(
        self, content: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        try:
            return await self._client.tokenize(
                content, add_special=add_special, parse_special=parse_special
            )
        except RunnerUnreachable as err:
            raise await self._dead(err) from err

    async def detokenize(self, tokens: list[int]) -> str:
        try:
            return await self._client.detokenize(tokens)
        except RunnerUnreachable as err:
            raise await self._dead(err) from err

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        try:
            return await self._client.embed(request)
        except RunnerUnreachable as err:
            raise await self._dead(err) from err

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        try:
            return await self._client.rerank(request)
        except RunnerUnreachable as err:
            raise await self._dead(err) from err


class SpareProcess:
    """A runner process started before its model is known (``python -m ocillm.runner --spare``).

    It has imported llama.cpp and waits on stdin for its arguments; ``RunnerProcess.start``
    hands them over. Only a spec whose environment (which GPUs it sees) matches can use it: that
    environment must be in place before the GPU runtime starts.
    """

    def __init__(self, proc: asyncio.subprocess.Process, gpu_env: dict[str, str]) -> None:
        self.proc = proc
        self.gpu_env = gpu_env

    @classmethod
    async def spawn(
        cls,
        gpu_env: Mapping[str, str],
        *,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> SpareProcess:
        argv = [python, "-m", "ocillm.runner", "--spare"]
        return cls(await _spawn(argv, _child_env(gpu_env, env)), dict(gpu_env))

    async def hand_over(
        self, spec: RunnerSpec, args: list[str]
    ) -> asyncio.subprocess.Process | None:
        """Give the spare its arguments; None (and the spare stopped) when it cannot take them."""
        if self.proc.returncode is None and spec.env() == self.gpu_env:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({"argv": args}).encode() + b"\n")
                await self.proc.stdin.drain()
                return self.proc
            except (BrokenPipeError, ConnectionResetError):
                pass
        await self.discard()
        return None

    async def discard(self) -> None:
        await _kill(self.proc, grace=1.0)


def _child_env(gpu_env: Mapping[str, str], base: Mapping[str, str] | None) -> dict[str, str]:
    child_env = dict(os.environ if base is None else base)
    child_env.update(gpu_env)
    paths = [_package_root(), *filter(None, child_env.get("PYTHONPATH", "").split(os.pathsep))]
    child_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return child_env


async def _spawn(argv: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )


def _tail(lines: deque[str]) -> str:
    """What explains an exit: llama.cpp's last error line and the runner's own last error line
    (a Python traceback ends with one); never llama.cpp's informational lines."""
    llama_errors = [line for line in lines if line.startswith(_LLAMA_ERROR)]
    own = [line for line in lines if not line.startswith(_LLAMA_TAG)]
    own_errors = [line for line in own if any(m in line.lower() for m in _ERROR_MARKERS)]
    picked = llama_errors[-1:] + own_errors[-1:] if llama_errors else own_errors[-3:]
    if picked:
        return ": " + " | ".join(picked)
    return " (no error line in its log)"


async def _read_stdout(proc: asyncio.subprocess.Process, ready: asyncio.Future[str]) -> None:
    assert proc.stdout is not None
    async for raw in proc.stdout:
        line = raw.decode(errors="replace").strip()
        if line.startswith(READY_PREFIX) and not ready.done():
            ready.set_result(line)


async def _read_stderr(proc: asyncio.subprocess.Process, lines: deque[str]) -> None:
    assert proc.stderr is not None
    async for raw in proc.stderr:
        line = raw.decode(errors="replace").rstrip()
        if line:
            lines.append(line)
            # Into the serve log at debug level: with OCILLM_DEBUG=1 (runners then start with
            # --verbose) llama.cpp's own log shows there, line by line.
            log.debug("runner %s: %s", proc.pid, line)


async def _kill(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; by PID, the child only."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.stdin is not None:
        proc.stdin.close()


def _remove_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)

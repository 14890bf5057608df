"""The scheduler: which runner serves a request, when models load and unload.

One asyncio object. Requests wait in one priority queue (higher ``priority`` first, FIFO among
equals, at most ``max_queue`` waiting). A request for a loaded model takes one of its
``num_parallel`` slots; one for a model not loaded (or loaded with other runner options, or whose
runner died) triggers a load. Loads happen one at a time; a load first makes room: at most
``max_loaded_models`` runners, and a new model must fit beside the loaded ones (fully on the GPUs
within 80% of their free memory when other models are loaded: ``ocillm.gpu.fit`` decides),
evicting idle runners, least recently used first. When a request finishes its slot is free at
once; a runner idle for its keep-alive is unloaded (0: right after the request; ``inf``: never).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ocillm.config import Settings
from ocillm.gpu.discovery import Discovery
from ocillm.gpu.estimate import KV_BYTES_PER_ELEMENT, EstimateOptions, ModelShape, ProjectorShape
from ocillm.gpu.fit import fit
from ocillm.gpu.placement import Placement
from ocillm.runner.base import Runner
from ocillm.runner.errors import RunnerError
from ocillm.runner.spec import RunnerSpec
from ocillm.scheduler.duration import parse_keep_alive
from ocillm.scheduler.errors import InsufficientMemory, QueueFull, SchedulerClosed
from ocillm.scheduler.events import SchedulerEvents
from ocillm.scheduler.factory import RunnerFactory
from ocillm.scheduler.request import LoadRequest

log = logging.getLogger(__name__)

#: Models per GPU (or on the CPU) when ``max_loaded_models`` is 0.
AUTO_MODELS_PER_DEVICE = 3
#: Attempts at getting a healthy runner before a request gives up.
HEALTH_ATTEMPTS = 3


@dataclass(frozen=True)
class RunningModel:
    """One row of ``/api/ps``."""

    name: str
    key: str
    digest: str
    model_path: Path
    size: int
    size_vram: int
    processor: str
    context_length: int
    expires_at: datetime | None  # None: never
    gpu_ids: tuple[str, ...]
    pid: int | None
    active_requests: int
    slots: int = 1  # parallel request slots; ``active_requests`` of them are busy


@dataclass(eq=False)
class _Entry:
    key: str
    request: LoadRequest
    runner: Runner
    placement: Placement
    num_parallel: int
    context_length: int
    keep_alive: float
    refcount: int = 0
    last_used: float = field(default_factory=time.monotonic)
    expires_at: float | None = None  # wall clock
    timer: asyncio.TimerHandle | None = None
    expiring: bool = False  # unload as soon as idle; serve nobody new
    exit_seen: bool = False  # its runner's death was reported (once)

    def serves(self, request: LoadRequest) -> bool:
        return (
            not self.expiring and self.runner.is_alive() and not request.needs_reload(self.request)
        )


@dataclass(eq=False)
class _Waiter:
    key: str
    request: LoadRequest
    seq: int
    future: asyncio.Future[_Entry]

    @property
    def order(self) -> tuple[int, int]:
        return (-self.request.priority, self.seq)


class Scheduler:
    def __init__(
        self,
        discovery: Discovery,
        factory: RunnerFactory,
        *,
        max_queue: int = 512,
        num_parallel: int = 1,
        max_loaded_models: int = 0,
        keep_alive: float = 300.0,
        load_timeout: float = 300.0,
        spread: bool = False,
        gpu_overhead: int = 0,
        runner_verbose: bool = False,
        events: SchedulerEvents | None = None,
        kv_cache_type: str = "f16",
        flash_attention: str = "auto",
    ) -> None:
        self.discovery = discovery
        self.factory = factory
        self.max_queue = max_queue
        self.num_parallel = max(num_parallel, 1)
        self.max_loaded_models = max_loaded_models
        self.keep_alive = keep_alive
        self.load_timeout = load_timeout
        self.spread = spread
        self.gpu_overhead = max(gpu_overhead, 0)  # bytes kept free on each GPU
        self.runner_verbose = runner_verbose  # llama.cpp's own log on the runner's stderr
        self.kv_cache_type = kv_cache_type  # OCILLM_KV_CACHE_TYPE: the runners' and the estimate's
        self.flash_attention = flash_attention  # OCILLM_FLASH_ATTENTION
        self.events = events or SchedulerEvents()  # loads, evictions, crashes (the metrics)
        self._entries: dict[str, _Entry] = {}
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._load_task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._shapes: dict[Path, ModelShape] = {}
        self._projectors: dict[Path, ProjectorShape] = {}
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        discovery: Discovery,
        factory: RunnerFactory,
        events: SchedulerEvents | None = None,
    ) -> Scheduler:
        keep_alive = parse_keep_alive(settings.keep_alive)
        load_timeout = parse_keep_alive(settings.load_timeout)
        return cls(
            discovery,
            factory,
            max_queue=settings.max_queue,
            num_parallel=settings.num_parallel,
            max_loaded_models=settings.max_loaded_models,
            keep_alive=300.0 if keep_alive is None else keep_alive,
            load_timeout=0.0 if load_timeout in (None, math.inf) else load_timeout,
            spread=settings.sched_spread,
            gpu_overhead=settings.gpu_overhead,
            runner_verbose=settings.debug,
            events=events,
            kv_cache_type=settings.kv_cache_type,
            flash_attention=settings.flash_attention,
        )

    # --- public API ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self, key: str, request: LoadRequest) -> AsyncIterator[Runner]:
        """A runner for ``request`` with one slot held until the block exits.

        ``key`` names the model (the store's manifest digest or path); requests with the same key
        share a runner. Raises ``QueueFull`` when ``max_queue`` requests already wait,
        ``RunnerError``/``InsufficientMemory`` when the model cannot load, ``SchedulerClosed``
        after ``shutdown()``. A cancelled caller leaves the queue; its slot frees at once.
        """
        entry = await self._get(key, request)
        try:
            yield entry.runner
        finally:
            self._release(entry)

    async def unload(self, key: str) -> bool:
        """Unload ``key`` now if idle, else as soon as its requests finish. False if not loaded."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        entry.expiring = True
        entry.keep_alive = 0.0
        if entry.refcount == 0:
            await self._unload(entry)
        return True

    async def shutdown(self) -> None:
        """Refuse new requests, fail the waiting ones, unload every runner."""
        self._closed = True
        for w in self._waiters:
            if not w.future.done():
                w.future.set_exception(SchedulerClosed())
        self._waiters.clear()
        if self._load_task is not None:
            self._load_task.cancel()
            with contextlib.suppress(BaseException):
                await self._load_task
        await asyncio.gather(*(self._unload(e) for e in list(self._entries.values())))
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        await self.factory.close()

    def ps(self) -> list[RunningModel]:
        now = time.time()
        rows = []
        for e in self._entries.values():
            if e.refcount > 0 or e.expires_at is None:
                until = None if math.isinf(e.keep_alive) else now + e.keep_alive
            else:
                until = e.expires_at
            rows.append(
                RunningModel(
                    name=e.request.display_name,
                    key=e.key,
                    digest=e.request.digest,
                    model_path=e.request.model_path,
                    size=e.placement.size,
                    size_vram=e.placement.size_vram,
                    processor=e.placement.processor,
                    context_length=e.context_length,
                    expires_at=_timestamp(until),
                    gpu_ids=e.placement.gpu_ids,
                    pid=e.runner.pid,
                    active_requests=e.refcount,
                    slots=e.num_parallel,
                )
            )
        far = datetime.now(timezone.utc) + timedelta(days=365 * 1000)
        return sorted(rows, key=lambda r: r.expires_at or far, reverse=True)

    @property
    def pending(self) -> int:
        """Requests waiting for a slot or a load."""
        return sum(1 for w in self._waiters if not w.future.done())

    def notice_exits(self) -> None:
        """Report every loaded runner that has died since the last look (otherwise noticed at
        its next request or unload), so a crash is counted when it happens, not when it matters."""
        for entry in list(self._entries.values()):
            self._note_exit(entry)

    def _note_exit(self, entry: _Entry) -> None:
        if not entry.exit_seen and not entry.runner.is_alive():
            entry.exit_seen = True
            self.events.crashed(entry.request.display_name)

    # --- waiting -------------------------------------------------------------------------

    async def _get(self, key: str, request: LoadRequest) -> _Entry:
        for _ in range(HEALTH_ATTEMPTS):
            entry = await self._wait_in_queue(key, request)
            try:
                healthy = await entry.runner.health()
            except BaseException:
                self._release(entry)
                raise
            if healthy:
                return entry
            log.warning("runner for %s (pid %s) is not healthy", key, entry.runner.pid)
            entry.expiring = True
            self._release(entry)
        raise RunnerError(f"no healthy runner for {request.display_name}")

    async def _wait_in_queue(self, key: str, request: LoadRequest) -> _Entry:
        if self._closed:
            raise SchedulerClosed()
        if self.pending >= self.max_queue:
            raise QueueFull()
        waiter = _Waiter(key, request, next(self._seq), asyncio.get_running_loop().create_future())
        orders = [w.order for w in self._waiters]
        index = next((i for i, o in enumerate(orders) if o > waiter.order), len(orders))
        self._waiters.insert(index, waiter)
        self._dispatch()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._drop(waiter)
            fut = waiter.future
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release(fut.result())  # granted just as we were cancelled
            self._dispatch()
            raise
        finally:
            self._drop(waiter)

    def _drop(self, waiter: _Waiter) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def _dispatch(self) -> None:
        """Grant every slot that can be granted now; start a load if a waiter needs one."""
        if self._closed:
            return
        for w in list(self._waiters):
            if w.future.done():
                self._drop(w)
                continue
            entry = self._entries.get(w.key)
            if entry is not None and entry.serves(w.request):
                if entry.refcount < entry.num_parallel:
                    self._grant(entry, w)
                continue
            if self._load_task is None:
                self._load_task = asyncio.create_task(self._load_for(w))

    def _grant(self, entry: _Entry, waiter: _Waiter) -> None:
        self._drop(waiter)
        entry.refcount += 1
        entry.last_used = time.monotonic()
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        if waiter.request.keep_alive is not None:
            entry.keep_alive = waiter.request.keep_alive
        waiter.future.set_result(entry)

    def _release(self, entry: _Entry) -> None:
        entry.refcount -= 1
        entry.last_used = time.monotonic()
        if entry.refcount == 0 and self._entries.get(entry.key) is entry:
            if entry.expiring or entry.keep_alive <= 0 or not entry.runner.is_alive():
                self._unload_soon(entry)
            else:
                self._arm_expiry(entry)
        self._notify()
        self._dispatch()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until_changed(self) -> None:
        await self._changed.wait()

    # --- keep-alive ----------------------------------------------------------------------

    def _arm_expiry(self, entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        if math.isinf(entry.keep_alive):
            entry.expires_at = None
            return
        entry.expires_at = time.time() + entry.keep_alive
        loop = asyncio.get_running_loop()
        entry.timer = loop.call_later(entry.keep_alive, self._expire, entry)

    def _expire(self, entry: _Entry) -> None:
        entry.timer = None
        if self._entries.get(entry.key) is entry and entry.refcount == 0:
            log.info("keep-alive expired for %s", entry.key)
            self._unload_soon(entry)

    # --- unloading -----------------------------------------------------------------------

    def _unload_soon(self, entry: _Entry) -> None:
        task = asyncio.create_task(self._unload(entry))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _unload(self, entry: _Entry) -> None:
        self._note_exit(entry)  # before stop(): a runner we stop is not a crash
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        try:
            await entry.runner.stop()
        except Exception:
            log.exception("stopping the runner of %s", entry.key)
        self._notify()
        self._dispatch()

    def _lru_idle(self, keep: str | None = None) -> _Entry | None:
        idle = [e for e in self._entries.values() if e.refcount == 0 and e.key != keep]
        return min(idle, key=lambda e: e.last_used) if idle else None

    # --- loading -------------------------------------------------------------------------

    async def _load_for(self, waiter: _Waiter) -> None:
        entry: _Entry | None = None
        try:
            entry = await self._make_room_and_load(waiter.key, waiter.request)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if not waiter.future.done():
                waiter.future.set_exception(err)
            self._drop(waiter)
        finally:
            self._load_task = None
            self._dispatch()
            if entry is not None and entry.refcount == 0 and entry.timer is None:
                self._release_idle(entry)

    def _release_idle(self, entry: _Entry) -> None:
        """A model loaded for a request that went away: keep it for its keep-alive."""
        if self._entries.get(entry.key) is not entry:
            return
        if entry.keep_alive <= 0:
            self._unload_soon(entry)
        else:
            self._arm_expiry(entry)

    async def _shape(self, request: LoadRequest) -> ModelShape:
        if request.shape is not None:
            return request.shape
        return await self._read_shape(request.model_path)

    async def _read_shape(self, path: Path) -> ModelShape:
        if path not in self._shapes:
            from ocillm.gguf import read_gguf_info

            info = await asyncio.to_thread(read_gguf_info, path)
            self._shapes[path] = ModelShape.from_gguf_info(info)
        return self._shapes[path]

    async def _projector_shape(self, path: Path) -> ProjectorShape:
        if path not in self._projectors:
            from ocillm.gguf import read_gguf_info

            info = await asyncio.to_thread(read_gguf_info, path)
            self._projectors[path] = ProjectorShape.from_gguf_info(info)
        return self._projectors[path]

    async def _make_room_and_load(self, key: str, request: LoadRequest) -> _Entry | None:
        shape = await self._shape(request)
        draft = None if request.draft is None else await self._read_shape(request.draft)
        projector = None
        if request.projector is not None:
            projector = await self._projector_shape(request.projector)
        opts = request.options
        num_parallel = 1 if opts.embedding else self.num_parallel
        options = EstimateOptions(
            num_ctx=max(opts.num_ctx, 4),
            num_batch=opts.num_batch,
            num_parallel=num_parallel,
            kv_bytes_per_element=KV_BYTES_PER_ELEMENT[self.kv_cache_type],
        )
        while True:
            if self._closed:
                raise SchedulerClosed()
            if self._stopping:
                await asyncio.gather(*list(self._stopping), return_exceptions=True)
                continue
            current = self._entries.get(key)
            if current is not None:
                if current.serves(request):
                    return None  # someone loaded it meanwhile
                current.expiring = True  # another config, or dead: replace it once idle
                if current.refcount > 0 and current.runner.is_alive():
                    await self._until_changed()
                else:
                    await self._unload(current)
                continue
            inventory = self.discovery.inventory()
            limit = self.max_loaded_models or AUTO_MODELS_PER_DEVICE * max(len(inventory.gpus), 1)
            if len(self._entries) >= limit:
                if not await self._evict_one(key):
                    await self._until_changed()
                continue
            answer = fit(
                shape,
                options,
                inventory,
                [e.placement for e in self._entries.values()],
                num_gpu=opts.num_gpu,
                spread=self.spread,
                overhead=self.gpu_overhead,
                draft=draft,
                projector=projector,
            )
            if answer.verdict == "evict":
                if not await self._evict_one(key):
                    await self._until_changed()
                continue
            if answer.verdict == "insufficient":
                raise InsufficientMemory(
                    request.display_name, answer.required, answer.available, where="system"
                )
            return await self._start(
                key, request, answer.placement, answer.num_ctx, num_parallel, answer.library
            )

    async def _evict_one(self, keep: str) -> bool:
        victim = self._lru_idle(keep)
        if victim is None:
            return False
        log.info("unloading %s to make room", victim.key)
        self.events.evicted(victim.request.display_name)
        await self._unload(victim)
        return True

    async def _start(
        self,
        key: str,
        request: LoadRequest,
        placement: Placement,
        num_ctx: int,
        num_parallel: int,
        library: str | None,
    ) -> _Entry:
        opts = request.options
        spec = RunnerSpec(
            model=request.model_path,
            n_ctx=num_ctx,
            n_gpu_layers=placement.n_gpu_layers,
            n_parallel=num_parallel,
            n_threads=opts.num_thread,
            n_batch=opts.num_batch,
            use_mmap=True if opts.use_mmap is None else opts.use_mmap,
            embedding=opts.embedding,
            loras=request.adapters,
            draft=request.draft,
            projector=request.projector,
            gpu_library=library,
            gpu_indices=placement.gpu_indices,
            main_gpu=_main_gpu(opts.main_gpu, placement),
            tensor_split=placement.tensor_split,
            verbose=self.runner_verbose,
            kv_cache_type=self.kv_cache_type,
            flash_attention=self.flash_attention,
        )
        log.info(
            "loading %s: %d layers on %s, %s",
            key,
            spec.n_gpu_layers,
            placement.gpu_ids or "CPU",
            placement.processor,
        )
        started = time.monotonic()
        try:
            runner = await self.factory.start(spec, load_timeout=self.load_timeout)
        except Exception:
            self.events.load_failed(request.display_name)
            raise
        self.events.loaded(request.display_name, time.monotonic() - started)
        if self._closed:
            await runner.stop()
            raise SchedulerClosed()
        keep_alive = self.keep_alive if request.keep_alive is None else request.keep_alive
        entry = _Entry(
            key=key,
            request=request,
            runner=runner,
            placement=placement,
            num_parallel=num_parallel,
            context_length=num_ctx,
            keep_alive=keep_alive,
        )
        self._entries[key] = entry
        return entry


def _main_gpu(ordinal: int | None, placement: Placement) -> int:
    """``main_gpu`` names a GPU by its runtime ordinal; the runner sees only the placement's GPUs
    (``CUDA_VISIBLE_DEVICES``), so it gets that GPU's position among them (0 if not chosen)."""
    if ordinal is None or ordinal not in placement.gpu_indices:
        return 0
    return placement.gpu_indices.index(ordinal)


def _timestamp(until: float | None) -> datetime | None:
    """``until`` as a UTC datetime; None (forever) when it is none or past what datetime holds,
    so one odd entry never breaks ``ps``."""
    if until is None:
        return None
    try:
        return datetime.fromtimestamp(until, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None

"""``GET /metrics``: the daemon's Prometheus metrics, in one registry per app.

Counters and histograms are updated where things happen: :class:`CountRequests` (an ASGI
middleware) counts every answered request by route, status and model; :class:`GenerationMeter`
records a generation's tokens and latencies as its chunks arrive from the runner; and
:class:`ServerMetrics` is the scheduler's :class:`~ocillm.scheduler.SchedulerEvents`, so loads,
evictions and crashed runners are counted where the scheduler sees them. The scheduler's gauges
(queue depth, runners, slots, memory) are read from its state at scrape time
(:class:`SchedulerCollector`), never kept twice.

The ``model`` label is the name ``/api/ps`` shows, and only ever a model of the store: a request
for a name the store does not have is counted with ``model=""``, so no client can grow the
label set. The registry is the app's own (not ``prometheus_client``'s global one), so several
apps in one process keep apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _render
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocillm.runner.protocol import CompletionChunk
from ocillm.scheduler import Scheduler, SchedulerEvents

#: The status a request is counted with when the client left before any answer was sent.
CLIENT_GONE = "499"
#: The route label of a path no route matches (an unknown URL must not become a label).
UNMATCHED = "unmatched"

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class _RequestLabels:
    model: str = ""


_labels: ContextVar[_RequestLabels | None] = ContextVar("ocillm_request_labels", default=None)


def label_model(name: str) -> None:
    """Name the model the current request is about (its ``model`` label); a no-op outside one."""
    labels = _labels.get()
    if labels is not None:
        labels.model = name


class ServerMetrics(SchedulerEvents):
    """The app's registry and every metric in it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scheduler: Scheduler | None = None  # set once the app's lifespan has started it
        r = self.registry
        self.requests = Counter(
            "ocillm_requests",
            "HTTP requests answered, by route template, status code and model",
            ["model", "route", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "ocillm_prompt_tokens",
            "Prompt tokens evaluated (generate, chat, embed, rerank: prompt_eval_count)",
            ["model"],
            registry=r,
        )
        self.draft_tokens = Counter(
            "ocillm_draft_tokens",
            "Tokens a draft model proposed (speculative decoding)",
            ["model"],
            registry=r,
        )
        self.draft_accepted = Counter(
            "ocillm_draft_accepted_tokens",
            "Draft tokens the model sampled too (accepted)",
            ["model"],
            registry=r,
        )
        self.generated_tokens = Counter(
            "ocillm_generated_tokens",
            "Tokens generated (generate and chat: eval_count)",
            ["model"],
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "ocillm_time_to_first_token_seconds",
            "From a generation request's arrival to its first token (queue and load included)",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.time_per_output_token = Histogram(
            "ocillm_time_per_output_token_seconds",
            "Per generation request: eval_duration / eval_count",
            ["model"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.load_duration = Histogram(
            "ocillm_model_load_duration_seconds",
            "From a runner's start to its model loaded and healthy",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.load_failures = Counter(
            "ocillm_model_load_failures", "Runners that failed to load", ["model"], registry=r
        )
        self.runner_crashes = Counter(
            "ocillm_runner_crashes",
            "Loaded runners that exited without being stopped",
            ["model"],
            registry=r,
        )
        self.evictions = Counter(
            "ocillm_evictions",
            "Idle runners unloaded to make room for another model",
            ["model"],
            registry=r,
        )
        r.register(SchedulerCollector(lambda: self.scheduler))

    # --- the scheduler's events ---------------------------------------------------------

    def loaded(self, model: str, seconds: float) -> None:
        self.load_duration.labels(model).observe(seconds)

    def load_failed(self, model: str) -> None:
        self.load_failures.labels(model).inc()

    def evicted(self, model: str) -> None:
        self.evictions.labels(model).inc()

    def crashed(self, model: str) -> None:
        self.runner_crashes.labels(model).inc()

    # --- the work's hooks ---------------------------------------------------------------

    def generation(self, model: str, start_ns: int) -> GenerationMeter:
        """A meter for one generation that arrived at ``start_ns`` (``perf_counter_ns``)."""
        return GenerationMeter(self, model, start_ns)

    def prompt(self, model: str, tokens: int) -> None:
        """Prompt tokens evaluated without a generation (embeddings, rerank)."""
        self.prompt_tokens.labels(model).inc(tokens)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything, crashes noticed up to now included."""
        if self.scheduler is not None:
            self.scheduler.notice_exits()
        return _render(self.registry)


class GenerationMeter:
    """Watches one generation's runner chunks: the first token's time, then the final counts."""

    def __init__(self, metrics: ServerMetrics, model: str, start_ns: int) -> None:
        self.metrics = metrics
        self.model = model
        self.start_ns = start_ns
        self._first_seen = False

    def _first(self) -> None:
        self._first_seen = True
        seconds = (time.perf_counter_ns() - self.start_ns) / 1e9
        self.metrics.time_to_first_token.labels(self.model).observe(seconds)

    def saw(self, chunk: CompletionChunk) -> None:
        if chunk.content and not self._first_seen:
            self._first()
        if not chunk.done:
            return
        if chunk.eval_count > 0 and not self._first_seen:
            self._first()  # the tokens it sampled printed nothing (an EOS, say)
        m = self.metrics
        m.prompt_tokens.labels(self.model).inc(chunk.prompt_eval_count)
        if chunk.draft_count is not None:
            m.draft_tokens.labels(self.model).inc(chunk.draft_count)
            m.draft_accepted.labels(self.model).inc(chunk.draft_accepted or 0)
        m.generated_tokens.labels(self.model).inc(chunk.eval_count)
        if chunk.eval_count > 0:
            per_token = chunk.eval_duration / chunk.eval_count / 1e9
            m.time_per_output_token.labels(self.model).observe(per_token)


class SchedulerCollector(Collector):
    """The scheduler's gauges, read from its state at each scrape."""

    def __init__(self, scheduler: Callable[[], Scheduler | None]) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterable[Metric]:
        queue = GaugeMetricFamily(
            "ocillm_queue_depth", "Requests waiting for a slot or a model load"
        )
        loaded = GaugeMetricFamily(
            "ocillm_models_loaded",
            "Runners loaded (a model loaded for embeddings too counts twice)",
        )
        families = {
            "busy": GaugeMetricFamily(
                "ocillm_slots_busy", "Request slots serving a request", labels=["model"]
            ),
            "idle": GaugeMetricFamily(
                "ocillm_slots_idle", "Request slots free for a request", labels=["model"]
            ),
            "vram": GaugeMetricFamily(
                "ocillm_vram_reserved_bytes",
                "GPU memory the scheduler reserved for the model (its estimate)",
                labels=["model"],
            ),
            "ram": GaugeMetricFamily(
                "ocillm_ram_reserved_bytes",
                "System memory the scheduler reserved for the model (its estimate)",
                labels=["model"],
            ),
        }
        scheduler = self.scheduler()
        rows = scheduler.ps() if scheduler is not None else []
        queue.add_metric([], scheduler.pending if scheduler is not None else 0)
        loaded.add_metric([], len(rows))
        per_model: dict[str, dict[str, int]] = {}
        for row in rows:
            values = per_model.setdefault(row.name, dict.fromkeys(families, 0))
            values["busy"] += row.active_requests
            values["idle"] += max(row.slots - row.active_requests, 0)
            values["vram"] += row.size_vram
            values["ram"] += row.size - row.size_vram
        for name, values in sorted(per_model.items()):
            for key, family in families.items():
                family.add_metric([name], values[key])
        yield queue
        yield loaded
        yield from families.values()


def _route(scope: Scope, routes: Iterable[BaseRoute]) -> str:
    """The template of the route that serves ``scope`` (``/api/blobs/{digest}``), found again
    when the request was answered before routing (a refused key, a host check)."""
    route = scope.get("route")
    if route is None:
        child = {**scope, "type": "http"}
        route = next((r for r in routes if r.matches(child)[0] is not Match.NONE), None)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class CountRequests:
    """Counts every HTTP request once its answer is finished (or its client gone)."""

    def __init__(
        self, app: ASGIApp, *, metrics: ServerMetrics, routes: Callable[[], Iterable[BaseRoute]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        labels = _RequestLabels()
        token = _labels.set(labels)
        status = CLIENT_GONE

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if status == CLIENT_GONE:
                status = "500"
            raise
        finally:
            _labels.reset(token)
            route = _route(scope, self.routes())
            self.metrics.requests.labels(labels.model, route, status).inc()


async def metrics_endpoint(request: Request) -> Response:
    metrics: ServerMetrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

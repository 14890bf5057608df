"""``GET /metrics``: scraped and parsed with ``prometheus_client``'s own parser after real requests.

A live ``ocillm serve`` on the tiny models (real runner processes, one model loaded at a time so
a second model evicts the first) is scraped after a few generate, chat, embed and failing
requests: the request counts are the requests made, the token counts the sums of the counts the
API answered, a killed runner is a crash. In-process apps show the key, the ``OCILLM_METRICS``
switch, memory gauges against ``/api/ps`` on a fake GPU, and two apps in one process apart.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from server_fixtures import ServerProcess, build_model, process_gone

from ocillm.config import Settings
from ocillm.gpu import FakeDiscovery, fake_gpu
from ocillm.scheduler import StubRunnerFactory
from ocillm.server.app import create_app

HEADERS = {"Host": "localhost"}
GiB = 1 << 30

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels``; 0 when absent (a counter never touched)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path, tiny_embed_gguf: Path
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("metrics")
    build_model(home / "models", tiny_gguf, "tiny", "PARAMETER num_predict 5\n")
    build_model(home / "models", tiny_embed_gguf, "embed")
    env = {"OCILLM_MAX_LOADED_MODELS": "1", "OCILLM_RUNNER_SPARE": "0"}
    proc = ServerProcess(home, env).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=120)


def scrape(server: ServerProcess) -> Samples:
    resp = httpx.get(server.url + "/metrics", timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return parse(resp.text)


def ps_names(server: ServerProcess) -> dict[str, dict[str, Any]]:
    models = httpx.get(server.url + "/api/ps", timeout=10).json()["models"]
    return {m["name"]: m for m in models}


def test_counts_equal_the_requests_made_and_the_tokens_answered(server: ServerProcess) -> None:
    answers = [
        post(server, "/api/generate", {"model": "tiny", "prompt": "hello", "stream": False}),
        post(server, "/api/generate", {"model": "tiny", "prompt": "the sky", "stream": False}),
    ]
    assert [a.status_code for a in answers] == [200, 200]
    finals = [a.json() for a in answers]
    chat = post(
        server, "/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert chat.status_code == 200
    finals.append(json.loads(chat.text.splitlines()[-1]))  # streamed: the last line has counts
    (tiny,) = ps_names(server)  # the name /api/ps shows is the label
    missing = post(server, "/api/generate", {"model": "no-such-model", "prompt": "x"})
    assert missing.status_code == 404
    bad = post(server, "/api/generate", {"model": "tiny", "prompt": "x", "think": "loud"})
    assert bad.status_code == 400
    embedded = post(server, "/api/embed", {"model": "embed", "input": ["red apples", "sky"]})
    assert embedded.status_code == 200
    embed_tokens = embedded.json()["prompt_eval_count"]
    (embed,) = ps_names(server)  # one model at a time: the embedding model evicted tiny
    assert embed != tiny

    s = scrape(server)
    generate = {"model": tiny, "route": "/api/generate"}
    assert value(s, "ocillm_requests_total", **generate, status="200") == 2
    assert value(s, "ocillm_requests_total", **generate, status="400") == 1
    assert value(s, "ocillm_requests_total", model=tiny, route="/api/chat", status="200") == 1
    # A name the store does not have never becomes a label.
    assert value(s, "ocillm_requests_total", model="", route="/api/generate", status="404") == 1
    assert value(s, "ocillm_requests_total", model=embed, route="/api/embed", status="200") == 1
    assert total(s, "ocillm_requests_total", route="/api/ps") == 2

    assert sum(f["prompt_eval_count"] for f in finals) > 0
    assert value(s, "ocillm_prompt_tokens_total", model=tiny) == sum(
        f["prompt_eval_count"] for f in finals
    )
    assert value(s, "ocillm_generated_tokens_total", model=tiny) == sum(
        f["eval_count"] for f in finals
    )
    assert value(s, "ocillm_prompt_tokens_total", model=embed) == embed_tokens > 0
    assert value(s, "ocillm_generated_tokens_total", model=embed) == 0

    # One observation per generation.
    assert value(s, "ocillm_time_to_first_token_seconds_count", model=tiny) == 3
    assert value(s, "ocillm_time_to_first_token_seconds_sum", model=tiny) > 0
    assert value(s, "ocillm_time_per_output_token_seconds_count", model=tiny) == 3
    inf = {"le": "+Inf"}
    assert value(s, "ocillm_time_to_first_token_seconds_bucket", model=tiny, **inf) == 3

    # Each model loaded once; tiny was evicted for the embedding model.
    assert value(s, "ocillm_model_load_duration_seconds_count", model=tiny) == 1
    assert value(s, "ocillm_model_load_duration_seconds_count", model=embed) == 1
    assert value(s, "ocillm_model_load_duration_seconds_sum", model=embed) > 0
    assert value(s, "ocillm_evictions_total", model=tiny) == 1
    assert value(s, "ocillm_evictions_total", model=embed) == 0

    # Gauges: the scheduler's state now.
    assert value(s, "ocillm_models_loaded") == 1
    assert value(s, "ocillm_queue_depth") == 0
    assert value(s, "ocillm_slots_idle", model=embed) == 1
    assert value(s, "ocillm_slots_busy", model=embed) == 0
    assert value(s, "ocillm_slots_idle", model=tiny) == 0  # not loaded: no series
    assert value(s, "ocillm_ram_reserved_bytes", model=embed) > 0
    assert value(s, "ocillm_vram_reserved_bytes", model=embed) == 0  # no GPU here


def test_a_killed_runner_is_one_crash_and_the_next_request_reloads(
    server: ServerProcess,
) -> None:
    assert post(server, "/api/embed", {"model": "embed", "input": "x"}).status_code == 200
    (embed,) = ps_names(server)
    before = scrape(server)
    loads = value(before, "ocillm_model_load_duration_seconds_count", model=embed)
    (pid,) = server.runner_pids()
    os.kill(pid, signal.SIGKILL)  # the runner this test's server started
    assert process_gone(pid)
    after = scrape(server)
    assert value(after, "ocillm_runner_crashes_total", model=embed) == 1
    again = scrape(server)  # counted once, however often it is scraped
    assert value(again, "ocillm_runner_crashes_total", model=embed) == 1
    assert post(server, "/api/embed", {"model": "embed", "input": "x"}).status_code == 200
    reloaded = scrape(server)
    assert value(reloaded, "ocillm_model_load_duration_seconds_count", model=embed) == loads + 1
    assert value(reloaded, "ocillm_runner_crashes_total", model=embed) == 1


# --- in-process apps ---------------------------------------------------------------------


def _settings(home: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"OCILLM_HOME": str(home), "OCILLM_MODELS": str(home / "models"), **env}
    )


def _app(home: Path, **env: str) -> TestClient:
    factory = StubRunnerFactory()
    discovery = FakeDiscovery([fake_gpu(0, 8 * GiB)])
    return TestClient(
        create_app(_settings(home, **env), discovery=discovery, factory=factory), headers=HEADERS
    )


@pytest.fixture
def home(tmp_path: Path, tiny_gguf: Path) -> Path:
    build_model(tmp_path / "models", tiny_gguf, "tiny", "PARAMETER num_predict 3\n")
    return tmp_path


def test_metrics_are_behind_the_api_key(home: Path) -> None:
    with _app(home, OCILLM_API_KEY="s3cret") as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        scraped = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert scraped.status_code == 200
        s = parse(scraped.text)
        # The refused scrape is counted too, under its route.
        assert value(s, "ocillm_requests_total", model="", route="/metrics", status="401") == 1


def test_ocillm_metrics_off_answers_404_and_counts_nothing(home: Path) -> None:
    with _app(home, OCILLM_METRICS="off") as client:
        resp = client.get("/metrics")
        assert (resp.status_code, resp.text) == (404, "404 page not found")
        assert client.app.state.metrics.requests.collect()[0].samples == []  # type: ignore[attr-defined]


def test_memory_gauges_are_what_ps_shows(home: Path) -> None:
    with _app(home) as client:
        assert (
            client.post("/api/generate", json={"model": "tiny", "prompt": "a b c"}).status_code
            == 200
        )
        (row,) = client.get("/api/ps").json()["models"]
        s = parse(client.get("/metrics").text)
        assert row["size_vram"] > 0
        name = row["name"]
        assert value(s, "ocillm_vram_reserved_bytes", model=name) == row["size_vram"]
        assert value(s, "ocillm_ram_reserved_bytes", model=name) == row["size"] - row["size_vram"]
        assert value(s, "ocillm_models_loaded") == 1


def test_two_apps_in_one_process_keep_their_own_counts(home: Path) -> None:
    with _app(home) as first, _app(home) as second:
        for _ in range(3):
            assert first.get("/api/tags").status_code == 200
        assert second.get("/api/tags").status_code == 200
        a = parse(first.get("/metrics").text)
        b = parse(second.get("/metrics").text)
    assert value(a, "ocillm_requests_total", model="", route="/api/tags", status="200") == 3
    assert value(b, "ocillm_requests_total", model="", route="/api/tags", status="200") == 1

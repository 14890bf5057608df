"""Scheduling through a live ``ocillm serve``: eviction with ``OCILLM_MAX_LOADED_MODELS=1``,
keep-alive expiry, a killed runner recovered, and the ``OCILLM_API_KEY`` bearer check.

One server for the module, with one model at most, an API key, and runners reached over unix
sockets (``OCILLM_RUNNER_UNIX_SOCKET``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from server_fixtures import ServerProcess, build_model, process_gone

KEY = "test-key-123"


@pytest.fixture(scope="module")
def other_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tiny_gguf as tiny  # registry-fixtures/, on sys.path through conftest

    path: Path = tiny.write_tiny_gguf(tmp_path_factory.mktemp("other") / "other.gguf", seed=7)
    return path


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path, other_gguf: Path
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-sched")
    build_model(home / "models", tiny_gguf, "first", "PARAMETER num_predict 4\n")
    build_model(home / "models", other_gguf, "second", "PARAMETER num_predict 4\n")
    proc = ServerProcess(
        home,
        {"OCILLM_MAX_LOADED_MODELS": "1", "OCILLM_API_KEY": KEY, "OCILLM_RUNNER_UNIX_SOCKET": "1"},
    ).start()
    yield proc
    pids = proc.runner_pids()
    assert proc.stop() == 0, proc.log()[-3000:]
    assert all(process_gone(pid) for pid in pids), "SIGTERM must unload every runner"


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.url, headers={"Authorization": f"Bearer {KEY}"})


def loaded(client: ollama.Client) -> list[str]:
    return [str(m.model) for m in client.ps().models]


def test_api_key_is_required_when_set(server: ServerProcess) -> None:
    r = httpx.get(server.url + "/api/tags")
    assert (r.status_code, r.json()) == (401, {"error": "unauthorized"})
    r = httpx.get(server.url + "/api/tags", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = httpx.get(server.url + "/api/tags", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200


def test_a_second_model_evicts_the_first(server: ServerProcess, client: ollama.Client) -> None:
    client.generate("first", "a")
    assert loaded(client) == ["first:latest"]
    (first_pid,) = server.runner_pids()
    client.generate("second", "b")
    assert loaded(client) == ["second:latest"]
    assert process_gone(first_pid)
    client.generate("first", "c")
    assert loaded(client) == ["first:latest"]


def test_keep_alive_expiry_unloads(server: ServerProcess, client: ollama.Client) -> None:
    client.generate("first", "a", keep_alive="1s")
    assert loaded(client) == ["first:latest"]
    (pid,) = server.runner_pids()
    deadline = time.monotonic() + 10
    while loaded(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert loaded(client) == []
    assert process_gone(pid)


def test_keep_alive_negative_keeps_the_model_forever(client: ollama.Client) -> None:
    client.generate("first", "a", keep_alive=-1)
    (row,) = client.ps().models
    assert row.expires_at is not None and row.expires_at.year > 2200
    client.generate("first", "", keep_alive=0)
    assert loaded(client) == []


def test_a_killed_runner_is_replaced_by_the_next_request(
    server: ServerProcess, client: ollama.Client
) -> None:
    client.generate("first", "a")
    (pid,) = server.runner_pids()
    os.kill(pid, signal.SIGKILL)
    assert process_gone(pid)
    out = client.generate("first", "b")
    assert out.done and out.eval_count == 4
    (new_pid,) = server.runner_pids()
    assert new_pid != pid


def test_sigterm_unloads_every_runner(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path
) -> None:
    home = tmp_path_factory.mktemp("serve-term")
    build_model(home / "models", tiny_gguf, "first")
    proc = ServerProcess(home).start()
    try:
        ollama.Client(host=proc.url).generate("first", "")
        (pid,) = proc.runner_pids()
    finally:
        status = proc.stop()
    assert status == 0
    assert process_gone(pid)
    assert "unloading every model" in proc.log()

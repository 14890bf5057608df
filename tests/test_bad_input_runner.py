"""Bad input never reaches llama.cpp (issue 10, items 1-4): out-of-vocabulary token ids, load
options out of range, huge prompts and bodies, a client leaving mid-prompt, a huge keep_alive.

One live ``ocillm serve`` for the module (two slots per model, real runner processes) on two
tiny random GGUFs: ``tiny`` (256-token trained context) and ``long`` (32768, so a prompt can
take seconds to evaluate).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
import tiny_gguf
from server_fixtures import REPO_ROOT, ServerProcess, build_model

from ocillm.runner import CompletionRequest, RunnerError, RunnerProcess, RunnerSpec

MAX_BODY = 12_000_000  # the server's OCILLM_MAX_REQUEST_BYTES here: a 10 MB prompt fits
VOCAB = 512  # the tiny models' vocabulary
LONG_CTX = 32768  # one load of ``long`` for every test here (no reloads between them)


@pytest.fixture(scope="module")
def long_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-long") / "tiny-long.gguf"
    written: Path = tiny_gguf.write_tiny_gguf(path, seed=0, context_length=32768)
    return written


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path, long_gguf: Path
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-bad-input")
    build_model(home / "models", tiny_gguf, "tiny", "PARAMETER num_predict 4\n")
    build_model(home / "models", long_gguf, "long", "PARAMETER num_batch 128\n")
    env = {"OCILLM_NUM_PARALLEL": "2", "OCILLM_MAX_REQUEST_BYTES": str(MAX_BODY)}
    proc = ServerProcess(home, env).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def post(server: ServerProcess, path: str, body: Any, timeout: float = 60) -> httpx.Response:
    return httpx.post(server.url + path, content=json.dumps(body), timeout=timeout)


def runner_pid(server: ServerProcess, model: str) -> int:
    for row in httpx.get(server.url + "/api/ps", timeout=10).json()["models"]:
        if row["name"] == model:
            return int(row["pid"])
    raise AssertionError(f"{model} is not loaded")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def long_prompt(words: int, word: str = "w") -> str:
    """``words`` words; another ``word`` shares no KV-cached prefix with an earlier prompt."""
    return " ".join(f"{word}{i % 97}" for i in range(words))


# --- 1. token ids outside the vocabulary ------------------------------------------------------


def test_context_ids_outside_the_vocabulary_are_400_and_a_running_stream_survives(
    server: ServerProcess,
) -> None:
    """A stream evaluating a long prompt on ``long`` keeps going while requests with token ids
    past the vocabulary (and negative ones) hit the same runner: each is a 400, the runner
    keeps its pid, and the stream ends with ``done``."""
    options = {"num_ctx": LONG_CTX}
    post(server, "/api/generate", {"model": "long", "prompt": "", "options": options})
    pid = runner_pid(server, "long:latest")
    result: dict[str, Any] = {}

    def stream() -> None:
        body = {
            "model": "long",
            "prompt": long_prompt(10000),
            "options": {"num_ctx": LONG_CTX, "num_predict": 3},
        }
        with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=120) as resp:
            result["lines"] = [json.loads(line) for line in resp.iter_lines() if line]

    thread = threading.Thread(target=stream)
    thread.start()
    time.sleep(1.0)
    for bad in ([999999], [-1], [VOCAB], [1, 2, VOCAB + 7]):
        r = post(
            server,
            "/api/generate",
            {"model": "long", "prompt": "hi", "context": bad, "stream": False, "options": options},
        )
        assert r.status_code == 400, r.text
        assert "out of range" in r.json()["error"] and str(VOCAB) in r.json()["error"]
    assert thread.is_alive(), "the stream ended before the bad requests: nothing was tested"
    thread.join(120)
    assert result["lines"][-1]["done"] is True and "error" not in result["lines"][-1]
    assert runner_pid(server, "long:latest") == pid
    ok = post(
        server,
        "/api/generate",
        {
            "model": "long",
            "prompt": "hi",
            "context": [1, 2, VOCAB - 1],
            "stream": False,
            "options": options,
        },
    )
    assert ok.status_code == 200 and ok.json()["done"] is True


def test_the_runner_refuses_out_of_range_tokens_itself(tiny_gguf: Path) -> None:
    """Defence in depth: a runner process asked directly answers 400 and stays up."""

    async def main() -> None:
        runner = await RunnerProcess.start(RunnerSpec(model=tiny_gguf, n_ctx=256))
        try:
            for bad in ([999999], [-1], [VOCAB]):
                with pytest.raises(RunnerError) as err:
                    await runner.detokenize(bad)
                assert err.value.http_status == 400 and "out of range" in str(err.value)
                with pytest.raises(RunnerError) as err:
                    async for _ in runner.completion(CompletionRequest(tokens=bad)):
                        pass
                assert err.value.http_status == 400 and "out of range" in str(err.value)
            assert runner.is_alive()
            assert await runner.detokenize([VOCAB - 1]) is not None
        finally:
            await runner.stop()

    asyncio.run(asyncio.wait_for(main(), 120))


# --- 2. options out of range --------------------------------------------------------------------

BAD_OPTIONS: dict[str, list[Any]] = {
    "num_ctx": [-1, 0, 1.5],
    "num_batch": [-1, 0],
    "num_thread": [100000, -1],
    "num_gpu": [-2],
    "main_gpu": [-1],
    "num_predict": [-3],
    "num_keep": [-2],
    "top_k": [-1],
    "top_p": [1.5, -0.1],
    "min_p": [2],
    "typical_p": [-1],
    "temperature": [-0.5],
    "repeat_last_n": [-2],
    "repeat_penalty": [-1],
    "seed": [0.5],
}


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, values in BAD_OPTIONS.items() for v in values]
)
def test_options_out_of_range_are_400_naming_the_option(
    server: ServerProcess, name: str, value: Any
) -> None:
    r = post(
        server,
        "/api/generate",
        {"model": "tiny", "prompt": "hi", "stream": False, "options": {name: value}},
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error.startswith(f'option "{name}" must be'), error
    assert "numpy" not in error and "Traceback" not in error


def test_the_same_checks_guard_the_chat_and_openai_apis(server: ServerProcess) -> None:
    r = post(
        server,
        "/api/chat",
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": "hi"}],
            "options": {"num_batch": -1},
            "stream": False,
        },
    )
    assert (r.status_code, r.json()) == (400, {"error": 'option "num_batch" must be at least 1'})
    r = post(server, "/v1/completions", {"model": "tiny", "prompt": "hi", "temperature": -1})
    assert r.status_code == 400 and 'option "temperature"' in r.json()["error"]["message"]


def test_edge_values_in_range_still_load_and_answer(server: ServerProcess) -> None:
    r = post(
        server,
        "/api/generate",
        {
            "model": "tiny",
            "prompt": "hi",
            "stream": False,
            "options": {
                "num_ctx": 1,
                "num_batch": 1,
                "num_thread": 1,
                "top_p": 1,
                "top_k": 0,
                "temperature": 0,
                "num_predict": -2,
                "repeat_last_n": -1,
                "seed": 2**40,
            },
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["done"] is True


def test_a_modelfile_parameter_out_of_range_is_refused_at_build(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    with pytest.raises(Exception, match='"num_batch" must be at least 1'):
        build_model(tmp_path / "models", tiny_gguf, "bad", "PARAMETER num_batch -1\n")


# --- 3. huge prompts and bodies ----------------------------------------------------------------


@pytest.mark.parametrize("api", ["generate", "chat"])
def test_a_10_mb_prompt_is_truncated_and_answers_within_seconds(
    server: ServerProcess, api: str
) -> None:
    text = "hello world " * 850_000  # 10.2 MB
    post(server, "/api/generate", {"model": "tiny", "prompt": ""})  # loaded: time the prompt
    if api == "generate":
        body: dict[str, Any] = {"model": "tiny", "prompt": text, "stream": False}
    else:
        body = {"model": "tiny", "messages": [{"role": "user", "content": text}], "stream": False}
    started = time.monotonic()
    r = post(server, f"/api/{api}", body)
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text[:500]
    assert r.json()["done"] is True
    assert elapsed < 6, f"a 10 MB prompt took {elapsed:.1f}s"
    assert len(r.content) < 100_000  # the context holds what the model saw, not 8M tokens
    assert r.json()["prompt_eval_count"] <= 256


def test_a_10_mb_prompt_with_truncate_false_is_refused_within_seconds(
    server: ServerProcess,
) -> None:
    started = time.monotonic()
    r = post(
        server,
        "/api/generate",
        {"model": "tiny", "prompt": "a" * 10_000_000, "truncate": False, "stream": False},
    )
    assert (r.status_code, r.json()) == (
        400,
        {"error": "the input length exceeds the context length"},
    )
    assert time.monotonic() - started < 6


def test_a_client_leaving_mid_prompt_evaluation_frees_the_runner(server: ServerProcess) -> None:
    """A 29000-token prompt takes about 7 s to evaluate on ``long`` (2 cores); the client
    leaves after 1.5 s. A second after that, the runner process uses (almost) no CPU."""
    options = {"num_ctx": LONG_CTX, "num_predict": 2}
    post(server, "/api/generate", {"model": "long", "prompt": "", "options": options})
    pid = runner_pid(server, "long:latest")
    body = json.dumps({"model": "long", "prompt": long_prompt(10000, "q"), "options": options})
    request = (
        f"POST /api/generate HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )
    # A raw socket: an HTTP client would wait for the headers, sent with the first token.
    before = cpu_seconds(pid)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request.encode())
        time.sleep(1.5)
    busy = cpu_seconds(pid) - before
    assert busy > 0.5, f"the runner used {busy:.2f}s of CPU: the prompt was not being evaluated"
    time.sleep(1.0)
    start = cpu_seconds(pid)
    time.sleep(1.0)
    after = cpu_seconds(pid) - start
    assert after < 0.2, f"the runner still used {after:.2f}s of CPU a second after the client left"
    assert runner_pid(server, "long:latest") == pid


def test_a_body_over_the_limit_is_413(server: ServerProcess) -> None:
    big = json.dumps({"model": "tiny", "prompt": "x" * (MAX_BODY + 10)}).encode()
    r = httpx.post(server.url + "/api/generate", content=big, timeout=60)
    assert (r.status_code, r.json()) == (413, {"error": "request body too large"})

    def chunks() -> Iterator[bytes]:  # no Content-Length: the bytes are counted as they come
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]

    r = httpx.post(server.url + "/api/generate", content=chunks(), timeout=60)
    assert (r.status_code, r.json()) == (413, {"error": "request body too large"})
    r = httpx.post(server.url + "/v1/completions", content=big, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["message"] == "request body too large"
    assert httpx.get(server.url + "/api/version").status_code == 200


# --- 4. a huge keep_alive ---------------------------------------------------------------------


@pytest.mark.parametrize("keep_alive", [1e20, "99999999999h", 1e308])
def test_a_huge_keep_alive_means_forever_and_ps_keeps_answering(
    server: ServerProcess, keep_alive: Any
) -> None:
    r = post(server, "/api/generate", {"model": "tiny", "prompt": "", "keep_alive": keep_alive})
    assert r.status_code == 200, r.text
    ps = httpx.get(server.url + "/api/ps", timeout=10)
    assert ps.status_code == 200, ps.text
    row = next(m for m in ps.json()["models"] if m["name"] == "tiny:latest")
    assert row["expires_at"].startswith("23")  # Ollama's "forever": ~290 years from now
    assert ollama.Client(host=server.url).ps().models
    env = {**os.environ, "OCILLM_HOST": server.host, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "ocillm", "ps"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("tiny:latest"))
    assert "Forever" in line
    post(server, "/api/generate", {"model": "tiny", "prompt": "", "keep_alive": "5m"})

"""Embeddings through the daemon with real runner processes, watched at the runner seam.

The app runs in-process (``create_app`` under Starlette's test client) with the real
``ProcessRunnerFactory``; each runner it starts is wrapped in :class:`Watched`, which records
every embedding request on its way to the real runner process and passes it on unchanged. That
shows what the wire cannot: a batch of inputs reaches the runner as one request.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fixtures import build_model

from ocillm.config import Settings
from ocillm.runner.base import Runner
from ocillm.runner.protocol import (
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from ocillm.runner.spec import RunnerSpec
from ocillm.scheduler import ProcessRunnerFactory, RunnerFactory
from ocillm.server.app import create_app

HEADERS = {"Host": "localhost"}


class Watched(Runner):
    """A real runner, its embedding requests recorded."""

    def __init__(self, runner: Runner, seen: list[EmbeddingRequest]) -> None:
        self.runner = runner
        self.seen = seen

    @property
    def pid(self) -> int | None:
        return self.runner.pid

    def is_alive(self) -> bool:
        return self.runner.is_alive()

    async def health(self) -> bool:
        return await self.runner.health()

    async def stop(self) -> None:
        await self.runner.stop()

    def completion(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        return self.runner.completion(request)

    async def tokenize(
        self, content: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        return await self.runner.tokenize(
            content, add_special=add_special, parse_special=parse_special
        )

    async def detokenize(self, tokens: list[int]) -> str:
        return await self.runner.detokenize(tokens)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.seen.append(request)
        return await self.runner.embed(request)


class WatchedFactory(RunnerFactory):
    def __init__(self) -> None:
        self.real = ProcessRunnerFactory()
        self.seen: list[EmbeddingRequest] = []

    async def start(self, spec: RunnerSpec, *, load_timeout: float) -> Runner:
        return Watched(await self.real.start(spec, load_timeout=load_timeout), self.seen)

    async def prestart(self) -> None:
        await self.real.prestart()

    async def close(self) -> None:
        await self.real.close()


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, tiny_embed_gguf: Path, tiny_gguf: Path
) -> Iterator[tuple[TestClient, WatchedFactory]]:
    home = tmp_path_factory.mktemp("embed-api")
    build_model(home / "models", tiny_embed_gguf, "embed")
    build_model(home / "models", tiny_gguf, "tiny")
    settings = Settings.from_env({"OCILLM_HOME": str(home), "OCILLM_MODELS": str(home / "models")})
    factory = WatchedFactory()
    with TestClient(create_app(settings, factory=factory), headers=HEADERS) as client:
        yield client, factory


@pytest.fixture(scope="module")
def vocab(tiny_embed_gguf: Path) -> Any:
    from ocillm.runner.llama_loader import open_llama

    return open_llama(tiny_embed_gguf, vocab_only=True, verbose=False)


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


INPUTS = ["red apples", "a green river", "x", "the quick brown fox jumps", "b c", "sky"]


def test_a_batch_reaches_the_runner_as_one_request(
    app: tuple[TestClient, WatchedFactory],
) -> None:
    client, factory = app
    client.post("/api/embed", json={"model": "embed", "input": []})  # load
    factory.seen.clear()
    out = client.post("/api/embed", json={"model": "embed", "input": INPUTS}).json()
    assert [r.input for r in factory.seen] == [INPUTS]
    assert factory.seen[0].normalize is True
    alone = [client.post("/api/embed", json={"model": "embed", "input": t}).json() for t in INPUTS]
    for batched, single in zip(out["embeddings"], alone, strict=True):
        assert batched == pytest.approx(single["embeddings"][0], abs=1e-6)
        assert math.isclose(norm(batched), 1.0, rel_tol=1e-6)


def test_prompt_eval_count_is_every_inputs_tokens(
    app: tuple[TestClient, WatchedFactory], vocab: Any
) -> None:
    client, _ = app
    out = client.post("/api/embed", json={"model": "embed", "input": INPUTS}).json()
    expected = sum(len(vocab.tokenize(t.encode(), add_bos=True)) for t in INPUTS)
    assert out["prompt_eval_count"] == expected


def test_openai_embeddings_are_one_request_too(app: tuple[TestClient, WatchedFactory]) -> None:
    client, factory = app
    factory.seen.clear()
    out = client.post(
        "/v1/embeddings", json={"model": "embed", "input": INPUTS, "dimensions": 16}
    ).json()
    assert [r.input for r in factory.seen] == [INPUTS]
    assert [d["index"] for d in out["data"]] == list(range(len(INPUTS)))
    assert all(len(d["embedding"]) == 16 for d in out["data"])
    assert all(math.isclose(norm(d["embedding"]), 1.0, rel_tol=1e-6) for d in out["data"])


def test_truncation_cuts_long_inputs_unless_told_not_to(
    app: tuple[TestClient, WatchedFactory],
) -> None:
    client, _ = app
    long = "word " * 400
    cut = client.post("/api/embed", json={"model": "embed", "input": [long, "short"]})
    assert cut.status_code == 200 and len(cut.json()["embeddings"]) == 2
    refused = client.post(
        "/api/embed", json={"model": "embed", "input": ["short", long], "truncate": False}
    )
    assert refused.status_code == 400
    assert refused.json() == {"error": "the input length exceeds the context length"}


def test_a_completion_model_embeds_through_a_runner_of_its_own(
    app: tuple[TestClient, WatchedFactory],
) -> None:
    client, _ = app
    assert client.post("/api/generate", json={"model": "tiny", "prompt": ""}).json()["done"]
    out = client.post("/api/embed", json={"model": "tiny", "input": ["a b", "c"]}).json()
    assert len(out["embeddings"]) == 2
    assert all(math.isclose(norm(v), 1.0, rel_tol=1e-6) for v in out["embeddings"])
    legacy = client.post("/api/embeddings", json={"model": "tiny", "prompt": "a b"}).json()
    assert len(legacy["embedding"]) == 64  # raw, not normalised (Ollama's legacy route)
    rows = client.get("/api/ps").json()["models"]
    assert sum(1 for r in rows if r["name"] == "tiny:latest") == 2

"""``/api/rerank`` and ``/v1/rerank`` on a tiny random-weight reranker (BERT, rank pooling).

The app runs in-process with real runner processes. The reranker GGUF is written at test time
(``registry-fixtures/tiny_reranker.py``); its scores mean nothing, but they are llama.cpp's: each
is checked against llama-cpp-python scoring the same ``[CLS] query [SEP] document`` in-process.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from server_fixtures import build_model
from tiny_reranker import CLS_ID, SEP_ID, write_tiny_reranker

from ocillm.config import Settings
from ocillm.server.app import create_app

HEADERS = {"Host": "localhost"}
QUERY = "what is the capital of france"
DOCS = [
    "paris is the capital of france",
    "the quick brown fox jumps",
    "apples are red",
    "a green river",
    "the sky is blue",
]


@pytest.fixture(scope="module")
def reranker_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_reranker(tmp_path_factory.mktemp("reranker") / "reranker.gguf", seed=0)


#: Rerank templates (``tokenizer.chat_template.rerank``): the first lays a pair out as the
#: default layout does, the second puts the document first.
SAME_AS_DEFAULT = "[CLS]{query}[SEP]{document}"
DOCUMENT_FIRST = "[CLS]{document}[SEP]{query}"


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory,
    reranker_gguf: Path,
    tiny_gguf: Path,
    tiny_embed_gguf: Path,
) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("rerank-api")
    build_model(home / "models", reranker_gguf, "reranker")
    for tag, template in (
        ("reranker-same", SAME_AS_DEFAULT),
        ("reranker-docfirst", DOCUMENT_FIRST),
    ):
        gguf = write_tiny_reranker(home / f"{tag}.gguf", seed=0, rerank_template=template)
        build_model(home / "models", gguf, tag)
    build_model(home / "models", tiny_gguf, "tiny")
    build_model(home / "models", tiny_embed_gguf, "embed")
    settings = Settings.from_env({"OCILLM_HOME": str(home), "OCILLM_MODELS": str(home / "models")})
    with TestClient(create_app(settings), headers=HEADERS) as c:
        yield c


def rerank(client: TestClient, path: str = "/api/rerank", **body: Any) -> dict[str, Any]:
    body = {"model": "reranker", "query": QUERY, "documents": DOCS, **body}
    resp = client.post(path, json=body)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def direct_scores(gguf: Path, query: str, docs: list[str]) -> list[float]:
    """llama-cpp-python in this process: ``[CLS] query [SEP] doc``, one sequence each."""
    import llama_cpp

    llama = llama_cpp.Llama(str(gguf), embedding=True, n_ctx=512, n_batch=512, verbose=False)
    try:
        q = llama.tokenize(query.encode(), add_bos=False, special=False)
        scores = []
        for doc in docs:
            d = llama.tokenize(doc.encode(), add_bos=False, special=False)
            llama._batch.reset()
            llama._batch.add_sequence([CLS_ID, *q, SEP_ID, *d], 0, True)
            llama._ctx.kv_cache_clear()
            llama._ctx.decode(llama._batch)
            pooled = llama_cpp.llama_get_embeddings_seq(llama._ctx.ctx, 0)
            scores.append(float(ctypes.cast(pooled, ctypes.POINTER(ctypes.c_float))[0]))
        return scores
    finally:
        llama.close()


def test_scores_are_llama_cpps_sorted_best_first_and_the_same_every_time(
    client: TestClient, reranker_gguf: Path
) -> None:
    first = rerank(client)
    assert first["model"] == "reranker" and first["object"] == "list"
    results = first["results"]
    assert sorted(r["index"] for r in results) == list(range(len(DOCS)))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(DOCS)  # random weights, but every document scores apart
    assert all("document" not in r for r in results)
    assert first["usage"]["prompt_tokens"] == first["usage"]["total_tokens"] > 0
    assert rerank(client) == first  # deterministic
    by_index = {r["index"]: r["relevance_score"] for r in results}
    expected = direct_scores(reranker_gguf, QUERY, DOCS)
    assert [by_index[i] for i in range(len(DOCS))] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_a_document_scores_the_same_alone_as_in_a_batch(client: TestClient) -> None:
    together = {r["index"]: r["relevance_score"] for r in rerank(client)["results"]}
    for i, doc in enumerate(DOCS):
        alone = rerank(client, documents=[doc])["results"]
        assert alone[0]["index"] == 0
        assert alone[0]["relevance_score"] == pytest.approx(together[i], rel=1e-4, abs=1e-4)


def test_top_n_keeps_the_best_and_return_documents_echoes_them(client: TestClient) -> None:
    full = rerank(client)["results"]
    top = rerank(client, top_n=2, return_documents=True)["results"]
    assert [r["index"] for r in top] == [r["index"] for r in full[:2]]
    assert [r["document"] for r in top] == [{"text": DOCS[r["index"]]} for r in top]
    assert len(rerank(client, top_n=50)["results"]) == len(DOCS)


def test_documents_as_objects_with_text_rank_as_strings(client: TestClient) -> None:
    objects = [{"text": d, "title": "ignored"} for d in DOCS]
    assert rerank(client, documents=objects)["results"] == rerank(client)["results"]


def test_a_rerank_template_lays_out_the_pair(client: TestClient) -> None:
    def scores(model: str) -> list[float]:
        results = rerank(client, model=model)["results"]
        return [s for _, s in sorted((r["index"], r["relevance_score"]) for r in results)]

    default = scores("reranker")
    assert scores("reranker-same") == pytest.approx(default, rel=1e-4, abs=1e-4)
    assert scores("reranker-docfirst") != pytest.approx(default, rel=1e-4, abs=1e-4)
    long_doc = " ".join(["apple"] * 700)
    cut = rerank(client, model="reranker-docfirst", documents=[long_doc])
    assert cut["usage"]["prompt_tokens"] == 512  # the document cut, the query kept


def test_v1_rerank_answers_the_same(client: TestClient) -> None:
    assert rerank(client, "/v1/rerank")["results"] == rerank(client)["results"]


@pytest.mark.parametrize("model", ["tiny", "embed"])
def test_a_model_that_cannot_rerank_is_a_400(client: TestClient, model: str) -> None:
    body = {"model": model, "query": "q", "documents": ["a"]}
    resp = client.post("/api/rerank", json=body)
    message = (
        f'"{model}" does not support rerank: it is not a reranker (a GGUF with pooling type rank)'
    )
    assert (resp.status_code, resp.json()) == (400, {"error": message})
    v1 = client.post("/v1/rerank", json=body)
    assert v1.status_code == 400
    assert v1.json()["error"]["message"] == message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"documents": []}, 'documents must be a non-empty list of strings or {"text": ...}'),
        ({"top_n": 0}, "top_n must be at least 1"),
    ],
)
def test_bad_requests_are_400s(client: TestClient, body: dict[str, Any], message: str) -> None:
    resp = client.post(
        "/api/rerank", json={"model": "reranker", "query": "q", "documents": ["a"], **body}
    )
    assert (resp.status_code, resp.json()) == (400, {"error": message})


def test_a_missing_query_or_a_bad_document_is_a_400(client: TestClient) -> None:
    no_query = client.post("/api/rerank", json={"model": "reranker", "documents": ["a"]})
    assert no_query.status_code == 400 and "query" in no_query.json()["error"]
    bad = client.post("/api/rerank", json={"model": "reranker", "query": "q", "documents": [3]})
    assert bad.status_code == 400 and "documents" in bad.json()["error"]
    missing = client.post("/api/rerank", json={"model": "nope", "query": "q", "documents": ["a"]})
    assert (missing.status_code, missing.json()) == (404, {"error": "model 'nope' not found"})


def test_a_document_too_long_is_cut_unless_truncate_is_false(client: TestClient) -> None:
    long_doc = " ".join(["apple"] * 700)  # one token a word: past the 512-token context
    cut = rerank(client, documents=[long_doc, "apples"])
    assert cut["usage"]["prompt_tokens"] <= 512 + 16
    refused = client.post(
        "/api/rerank",
        json={"model": "reranker", "query": QUERY, "documents": [long_doc], "truncate": False},
    )
    assert refused.status_code == 400
    assert "exceeds the context length (512)" in refused.json()["error"]


def test_embeddings_of_a_reranker_are_refused(client: TestClient) -> None:
    resp = client.post("/api/embed", json={"model": "reranker", "input": ["a"]})
    assert resp.status_code == 400
    assert "this model is a reranker" in resp.json()["error"]


def test_rerank_tokens_are_counted_in_the_metrics(client: TestClient) -> None:
    def counted() -> float:
        text = client.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if (
                    s.name == "ocillm_prompt_tokens_total"
                    and s.labels["model"] == "reranker:latest"
                ):
                    return float(s.value)
        return 0.0

    before = counted()
    used = rerank(client)["usage"]["prompt_tokens"]
    assert counted() == before + used

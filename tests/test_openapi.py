"""The served OpenAPI document: request and response schemas from the pydantic models, one
operation id per operation, ``/openapi.json`` and ``/docs`` behind ``OCILLM_API_KEY``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_fixtures import ServerProcess

KEY = "openapi-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-openapi")
    proc = ServerProcess(home, {"OCILLM_API_KEY": KEY, "OCILLM_RUNNER_SPARE": "0"}).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


@pytest.fixture(scope="module")
def doc(server: ServerProcess) -> dict[str, Any]:
    r = httpx.get(server.url + "/openapi.json", headers=AUTH)
    assert r.status_code == 200
    data: dict[str, Any] = r.json()
    return data


def _schema(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/"), ref
    found: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return found


def test_openapi_and_docs_need_the_api_key(server: ServerProcess) -> None:
    for path in ("/openapi.json", "/docs"):
        assert httpx.get(server.url + path).status_code == 401, path
        r = httpx.get(server.url + path, headers=AUTH)
        assert r.status_code == 200, path
    assert "swagger" in httpx.get(server.url + "/docs", headers=AUTH).text.lower()


def test_every_operation_has_its_own_id(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert ids and not [i for i, n in Counter(ids).items() if n > 1]
    assert {"get", "head"} <= set(doc["paths"]["/api/tags"])


@pytest.mark.parametrize(
    ("path", "request_model", "response_model"),
    [
        ("/api/generate", "GenerateRequest", "GenerateResponse"),
        ("/api/chat", "ChatRequest", "ChatResponse"),
        ("/api/embed", "EmbedRequest", "EmbedResponse"),
        ("/api/embeddings", "EmbeddingsRequest", "EmbeddingResponse"),
        ("/api/show", "ShowRequest", None),
        ("/api/copy", "CopyRequest", None),
        ("/api/create", "CreateRequest", "ProgressResponse"),
        ("/api/pull", "PullRequest", "ProgressResponse"),
        ("/api/push", "PushRequest", "ProgressResponse"),
        ("/v1/chat/completions", "ChatCompletionRequest", "ChatCompletion"),
        ("/v1/completions", "CompletionRequest", "Completion"),
        ("/v1/embeddings", "EmbeddingRequest", "EmbeddingList"),
        ("/v1/messages", "MessagesRequest", "AnthropicMessage"),
        ("/v1/messages/count_tokens", "CountTokensRequest", "TokenCount"),
        ("/v1/responses", "ResponsesRequest", None),
    ],
)
def test_post_bodies_are_the_pydantic_models(
    doc: dict[str, Any], path: str, request_model: str, response_model: str | None
) -> None:
    op = doc["paths"][path]["post"]
    body = op["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/" + request_model)
    assert _schema(doc, ref)["type"] == "object" and _schema(doc, ref)["properties"]
    if response_model is not None:
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/" + response_model), ref
        _schema(doc, ref)
    assert op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]


def test_schemas_name_ollama_field_names(doc: dict[str, Any]) -> None:
    generate = _schema(
        doc,
        doc["paths"]["/api/generate"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["$ref"],
    )
    assert {"model", "prompt", "options", "keep_alive", "_debug_render_only"} <= set(
        generate["properties"]
    )
    create = doc["paths"]["/api/create"]["post"]["requestBody"]["content"]["application/json"]
    assert "from" in _schema(doc, create["schema"]["$ref"])["properties"]
    chat = _schema(
        doc,
        doc["paths"]["/api/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "$ref"
        ],
    )
    assert chat["properties"]["messages"]["type"] == "array"
    tags = doc["paths"]["/api/tags"]["get"]["responses"]["200"]["content"]["application/json"]
    assert tags["schema"]["$ref"].endswith("/ListResponse")


def test_hand_parsing_keeps_ollama_wording(server: ServerProcess) -> None:
    post = lambda body: httpx.post(server.url + "/api/generate", content=body, headers=AUTH)  # noqa: E731
    assert post(b"").json() == {"error": "missing request body"}
    assert post(b"{bad").json()["error"].startswith("invalid JSON")
    assert post(b'{"model":"x","prompt":5}').json()["error"].startswith("prompt:")


def test_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    import schemathesis

    operations = list(schemathesis.openapi.from_dict(doc).get_all_operations())
    assert len(operations) >= 24  # every method of every route
    assert all(type(op).__name__ == "Ok" for op in operations)  # each one loads
    assert doc["openapi"].startswith("3.")

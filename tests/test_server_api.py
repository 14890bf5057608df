"""The Ollama API of a live ``ocillm serve`` on the tiny model, through the official ``ollama``
client and raw HTTP: every endpoint, streamed and not, errors with Ollama's statuses and words.

One server for the module (real runner processes); images are built into its store first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from server_fixtures import ServerProcess, build_model

TEMPLATE = "{{ range .Messages }}<{{ .Role }}>{{ .Content }}{{ end }}<assistant>"
SYS_MODELFILE = f'''TEMPLATE """{TEMPLATE}"""
SYSTEM sys
MESSAGE user u1
MESSAGE assistant a1
PARAMETER num_predict 6
PARAMETER temperature 0
'''

# A template that names thinking tags and prefills the opening one: everything the model says
# until </think> is thinking.
THINK_MODELFILE = """TEMPLATE \"\"\"{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>\
{{ end }}{{ .Content }}{{ end }}{{ if .Think }}<think>{{ end }}\"\"\"
PARAMETER num_predict 6
"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path, tiny_embed_gguf: Path
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-api")
    build_model(home / "models", tiny_gguf, "tiny", "PARAMETER num_predict 8\n")
    build_model(home / "models", tiny_gguf, "tiny-sys", SYS_MODELFILE)
    build_model(
        home / "models", tiny_gguf, "tiny-fim", 'TEMPLATE "{{ .Prompt }}<fim>{{ .Suffix }}"\n'
    )
    build_model(home / "models", tiny_embed_gguf, "embed")
    build_model(home / "models", tiny_gguf, "tiny-think", THINK_MODELFILE)
    proc = ServerProcess(home, {"OCILLM_ORIGINS": "https://*.example.org"}).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.url)


@pytest.fixture(scope="module")
def vocab(tiny_gguf: Path) -> Any:
    from ocillm.runner.llama_loader import open_llama

    return open_llama(tiny_gguf, vocab_only=True, verbose=False)


def tokens(vocab: Any, text: str, bos: bool = False) -> list[int]:
    return list(vocab.tokenize(text.encode(), add_bos=bos, special=True))


def post(server: ServerProcess, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    content = kw.pop("content", None)
    if content is None and body is not None:
        content = json.dumps(body)
    return httpx.post(server.url + path, content=content, timeout=60, **kw)


def lines(resp: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


# --- basics -----------------------------------------------------------------------------------


def test_root_and_version_answer_get_and_head(server: ServerProcess) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert httpx.head(server.url + "/").status_code == 200
    assert httpx.get(server.url + "/api/version").json() == {"version": "0.1.0"}
    assert httpx.head(server.url + "/api/version").status_code == 200


def test_unknown_route_is_404_and_wrong_method_405(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/api/nothing").status_code == 404
    assert httpx.get(server.url + "/api/generate").status_code == 405


# --- generate ---------------------------------------------------------------------------------


def test_generate_streams_ndjson_with_metrics_and_context(server: ServerProcess) -> None:
    r = post(server, "/api/generate", {"model": "tiny", "prompt": "hello", "options": {"seed": 3}})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-ndjson"
    chunks = lines(r)
    assert 2 <= len(chunks) <= 9  # a token may be part of a character: no chunk of its own
    assert all(c["model"] == "tiny" and not c["done"] for c in chunks[:-1])
    assert all(c["created_at"].endswith("Z") for c in chunks)
    final = chunks[-1]
    assert final["done"] is True and final["done_reason"] == "length" and final["response"] == ""
    for key in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ):
        assert isinstance(final[key], int), key
    assert final["eval_count"] == 8  # num_predict 8 from the image's PARAMETER
    assert final["total_duration"] >= final["eval_duration"] > 0
    assert isinstance(final["context"], list) and final["context"]


def test_generate_stream_false_equals_the_stream_merged(client: ollama.Client) -> None:
    opts = {"temperature": 0, "seed": 1, "num_predict": 6}
    streamed = list(client.generate("tiny", "abc", options=opts, stream=True))
    whole = client.generate("tiny", "abc", options=opts, stream=False)
    assert whole.response == "".join(c.response for c in streamed)
    assert whole.done and whole.eval_count == streamed[-1].eval_count == 6
    assert whole.context == streamed[-1].context


def test_generate_renders_modelfile_system_and_messages_before_the_prompt(
    client: ollama.Client, vocab: Any
) -> None:
    out = client.generate("tiny-sys", "p", stream=False)
    rendered = "<system>sys<user>u1<assistant>a1<user>p<assistant>"
    assert out.context == tokens(vocab, rendered + out.response)
    assert out.prompt_eval_count == len(tokens(vocab, rendered, bos=True))


def test_generate_system_and_template_override_the_image(client: ollama.Client, vocab: Any) -> None:
    out = client.generate(
        "tiny-sys", "p", system="S2", template="[{{ .System }}|{{ .Prompt }}]", stream=False
    )
    # The Modelfile MESSAGEs still come first, each turn one execution (Ollama's legacy path).
    assert out.context == tokens(vocab, "[S2|u1]a1[|p]" + out.response)


def test_generate_raw_sends_the_prompt_as_is_and_returns_no_context(
    client: ollama.Client, vocab: Any
) -> None:
    out = client.generate("tiny-sys", "<raw>", raw=True, stream=False)
    assert out.context is None
    assert out.prompt_eval_count == len(tokens(vocab, "<raw>", bos=True))


def test_generate_context_continues_the_conversation(client: ollama.Client, vocab: Any) -> None:
    first = client.generate("tiny-sys", "one", stream=False)
    second = client.generate(
        "tiny-sys", "two", context=first.context, template="{{ .Prompt }}", stream=False
    )
    # The context is detokenized in front of the new prompt (as Ollama does).
    assert first.context is not None and second.context is not None
    assert second.prompt_eval_count is not None
    assert second.prompt_eval_count >= len(first.context) + len(tokens(vocab, "two"))
    assert vocab.detokenize(second.context).decode().endswith("two" + second.response)


def test_generate_suffix_uses_the_fill_in_the_middle_template(
    client: ollama.Client, vocab: Any
) -> None:
    out = client.generate("tiny-fim", "pre", suffix="post", stream=False)
    assert out.context == tokens(vocab, "pre<fim>post" + out.response)


def test_raw_mode_refuses_system_template_and_context(server: ServerProcess) -> None:
    r = post(server, "/api/generate", {"model": "tiny", "prompt": "x", "raw": True, "system": "s"})
    assert r.status_code == 400
    assert r.json() == {"error": "raw mode does not support template, system, or context"}


def test_empty_prompt_loads_and_keep_alive_zero_unloads(
    server: ServerProcess, client: ollama.Client
) -> None:
    loaded = client.generate("tiny", "")
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""
    assert "tiny:latest" in [m.model for m in client.ps().models]
    unloaded = client.generate("tiny", "", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert "tiny:latest" not in [m.model for m in client.ps().models]
    chat = client.chat("tiny", messages=[])
    assert chat.done_reason == "load" and chat.message.role == "assistant"
    assert client.chat("tiny", messages=[], keep_alive=0).done_reason == "unload"


def test_format_json_constrains_the_output(client: ollama.Client) -> None:
    out = client.generate("tiny", "x", format="json", options={"num_predict": 12}, stream=False)
    assert out.response.lstrip().startswith("{")


def test_format_schema_constrains_the_output(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    out = client.generate("tiny", "x", format=schema, options={"num_predict": 8}, stream=False)
    assert out.response.replace(" ", "").replace("\n", "").startswith('{"n"')


def test_invalid_format_is_400(server: ServerProcess) -> None:
    r = post(server, "/api/generate", {"model": "tiny", "prompt": "x", "format": "xml"})
    assert r.status_code == 400
    assert r.json()["error"] == (
        'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'
    )
    r = post(server, "/api/generate", {"model": "tiny", "prompt": "x", "format": {"type": 5}})
    assert r.status_code == 400 and r.json()["error"].startswith("invalid JSON schema in format")


def test_options_of_the_wrong_type_are_400_in_ollamas_words(server: ServerProcess) -> None:
    cases = {
        "top_k": ("a", 'option "top_k" must be of type integer'),
        "temperature": ("hot", 'option "temperature" must be of type float32'),
        "use_mmap": (1, 'option "use_mmap" must be of type boolean'),
        "stop": ("x", 'option "stop" must be of type array'),
    }
    for name, (value, message) in cases.items():
        r = post(
            server, "/api/generate", {"model": "tiny", "prompt": "x", "options": {name: value}}
        )
        assert (r.status_code, r.json()) == (400, {"error": message})


def test_unknown_options_are_ignored_and_request_options_win(client: ollama.Client) -> None:
    out = client.generate(
        "tiny", "x", options={"num_predict": 3, "no_such_option": 1, "temperature": 0}, stream=False
    )
    assert out.eval_count == 3  # the request's 3, not the image's 8


def test_stop_sequences_end_generation(client: ollama.Client) -> None:
    free = client.generate("tiny", "x", options={"temperature": 0, "num_predict": 8}, stream=False)
    assert len(free.response) > 2
    stop = free.response[1:3]
    out = client.generate(
        "tiny", "x", options={"temperature": 0, "num_predict": 8, "stop": [stop]}, stream=False
    )
    assert out.done_reason == "stop" and stop not in out.response


def test_missing_model_is_404(server: ServerProcess, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.generate("nope", "x")
    assert err.value.status_code == 404 and err.value.error == "model 'nope' not found"
    r = post(server, "/api/chat", {"model": "nope", "messages": []})
    assert (r.status_code, r.json()) == (404, {"error": "model 'nope' not found"})


def test_capabilities_the_model_lacks_are_400(client: ollama.Client) -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
    }
    cases = [
        (lambda: client.generate("tiny", "x", think=True), '"tiny" does not support thinking'),
        (
            lambda: client.generate("tiny", "x", suffix="y"),
            "registry.ollama.ai/library/tiny:latest does not support insert",
        ),
        (
            lambda: client.chat("tiny-sys", [{"role": "user", "content": "x"}], tools=[tool]),
            "registry.ollama.ai/library/tiny-sys:latest does not support tools",
        ),
        (
            lambda: client.generate("tiny", "x", images=[b"\x89PNG"]),
            "this model is missing data required for image input",
        ),
        (lambda: client.generate("embed", "x"), '"embed" does not support generate'),
        (
            lambda: client.chat("embed", [{"role": "user", "content": "x"}]),
            '"embed" does not support chat',
        ),
    ]
    for call, message in cases:
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert (err.value.status_code, err.value.error) == (400, message)


# --- chat -------------------------------------------------------------------------------------


def test_chat_streams_and_merges(client: ollama.Client, vocab: Any) -> None:
    messages = [{"role": "user", "content": "hi"}]
    streamed = list(client.chat("tiny-sys", messages, stream=True))
    assert all(c.message.role == "assistant" for c in streamed)
    final = streamed[-1]
    assert final.done and final.done_reason == "length" and final.eval_count == 6
    whole = client.chat("tiny-sys", messages, stream=False)
    assert whole.message.content == "".join(c.message.content for c in streamed)
    rendered = "<system>sys<user>u1<assistant>a1<user>hi<assistant>"
    assert whole.prompt_eval_count == len(tokens(vocab, rendered, bos=True))


def test_chat_own_system_message_replaces_the_modelfile_system(
    client: ollama.Client, vocab: Any
) -> None:
    messages = [{"role": "system", "content": "mine"}, {"role": "user", "content": "q"}]
    out = client.chat("tiny-sys", messages, stream=False)
    rendered = "<user>u1<assistant>a1<system>mine<user>q<assistant>"
    assert out.prompt_eval_count == len(tokens(vocab, rendered, bos=True))


def test_chat_truncates_history_that_does_not_fit_the_context(client: ollama.Client) -> None:
    long = "word " * 60
    messages = [{"role": "user", "content": long}, {"role": "assistant", "content": long}] * 3
    messages.append({"role": "user", "content": "last"})
    out = client.chat("tiny-sys", messages, options={"num_ctx": 256}, stream=False)
    assert out.done and out.prompt_eval_count <= 256


def test_chat_with_the_gguf_chat_template(client: ollama.Client) -> None:
    # Greedy: a sampled answer on the random model can end (EOS) before num_predict.
    msgs = [{"role": "user", "content": "hi"}]
    out = client.chat("tiny", msgs, stream=False, options={"temperature": 0})
    assert out.done and out.eval_count == 8


# --- embeddings -------------------------------------------------------------------------------


def test_embed_returns_normalized_vectors(client: ollama.Client) -> None:
    out = client.embed("embed", ["a b", "c"])
    assert len(out.embeddings) == 2
    for vector in out.embeddings:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-5)
    assert out.prompt_eval_count and out.prompt_eval_count > 0
    single = client.embed("embed", "a b")
    assert single.embeddings[0] == pytest.approx(out.embeddings[0], rel=1e-5)


def test_embed_dimensions_cut_and_renormalize(client: ollama.Client) -> None:
    out = client.embed("embed", "a b", dimensions=8)
    assert len(out.embeddings[0]) == 8
    assert math.isclose(math.sqrt(sum(x * x for x in out.embeddings[0])), 1.0, rel_tol=1e-5)


def test_embed_empty_input_loads_and_bad_input_is_400(server: ServerProcess) -> None:
    r = post(server, "/api/embed", {"model": "embed", "input": []})
    assert r.status_code == 200 and r.json()["embeddings"] == []
    r = post(server, "/api/embed", {"model": "embed", "input": 5})
    assert (r.status_code, r.json()) == (400, {"error": "invalid input type"})


def test_embed_truncate_false_refuses_a_long_input(server: ServerProcess) -> None:
    r = post(server, "/api/embed", {"model": "embed", "input": "word " * 400, "truncate": False})
    assert r.status_code == 400
    assert r.json()["error"] == "the input length exceeds the context length"


def test_legacy_embeddings(client: ollama.Client) -> None:
    out = client.embeddings("embed", "a b")
    assert len(out.embedding) == 64
    assert client.embeddings("embed", "").embedding == []


# --- listing and management -------------------------------------------------------------------


def test_tags_lists_every_image(client: ollama.Client, server: ServerProcess) -> None:
    names = {m.model for m in client.list().models}
    assert {"tiny:latest", "tiny-sys:latest", "embed:latest"} <= names
    raw = httpx.get(server.url + "/api/tags").json()["models"]
    tiny = next(m for m in raw if m["name"] == "tiny:latest")
    assert len(tiny["digest"]) == 64 and tiny["size"] > 500_000
    assert tiny["details"]["family"] == "llama" and tiny["capabilities"] == ["completion"]


def test_show_reports_the_image(client: ollama.Client, server: ServerProcess) -> None:
    shown = client.show("tiny-sys")
    assert shown.template == TEMPLATE
    assert "num_predict" in (shown.parameters or "")
    assert shown.capabilities == ["completion"]
    assert shown.modelinfo and shown.modelinfo["general.architecture"] == "llama"
    raw = post(server, "/api/show", {"model": "tiny-sys"}).json()
    assert raw["system"] == "sys" and raw["messages"][0] == {"role": "user", "content": "u1"}
    r = post(server, "/api/show", {"model": "nope"})
    assert (r.status_code, r.json()) == (404, {"error": "model 'nope' not found"})


def test_ps_lists_loaded_models(client: ollama.Client, server: ServerProcess) -> None:
    client.generate("tiny", "x", keep_alive="10m")
    row = next(m for m in client.ps().models if m.model == "tiny:latest")
    assert row.size and row.size > 0 and row.size_vram == 0 and row.context_length == 256
    assert row.expires_at is not None
    raw = httpx.get(server.url + "/api/ps").json()["models"]
    tiny = next(m for m in raw if m["name"] == "tiny:latest")
    assert tiny["processor"] == "100% CPU" and tiny["details"]["family"] == "llama"


def test_copy_and_delete(client: ollama.Client, server: ServerProcess) -> None:
    client.copy("tiny", "tiny-copy:1")
    assert "tiny-copy:1" in {m.model for m in client.list().models}
    client.delete("tiny-copy:1")
    assert "tiny-copy:1" not in {m.model for m in client.list().models}
    r = post(server, "/api/copy", {"source": "nope", "destination": "x"})
    assert (r.status_code, r.json()) == (404, {"error": 'model "nope" not found'})
    r = post(server, "/api/copy", {"source": "tiny", "destination": "Bad Name"})
    assert (r.status_code, r.json()) == (400, {"error": 'destination "Bad Name" is invalid'})
    r = httpx.request("DELETE", server.url + "/api/delete", json={"model": "nope"})
    assert (r.status_code, r.json()) == (404, {"error": "model 'nope' not found"})


def test_blobs_upload_verify_and_head(server: ServerProcess, tiny_gguf: Path) -> None:
    data = tiny_gguf.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    fresh = b"blob that is not there yet"
    fresh_digest = "sha256:" + hashlib.sha256(fresh).hexdigest()
    assert httpx.head(f"{server.url}/api/blobs/{fresh_digest}").status_code == 404
    r = post(server, f"/api/blobs/{fresh_digest}", content=b"something else")
    assert r.status_code == 400
    assert r.json()["error"] == (
        f'digest mismatch, expected "{fresh_digest}", got '
        f'"sha256:{hashlib.sha256(b"something else").hexdigest()}"'
    )
    assert httpx.head(f"{server.url}/api/blobs/{fresh_digest}").status_code == 404
    assert post(server, f"/api/blobs/{fresh_digest}", content=fresh).status_code == 201
    assert httpx.head(f"{server.url}/api/blobs/{fresh_digest}").status_code == 200
    assert post(server, f"/api/blobs/{digest}", content=data).status_code == 200  # already there
    r = post(server, "/api/blobs/sha256:abc", content=b"x")
    assert (r.status_code, r.json()) == (400, {"error": "invalid digest format"})


def test_create_from_uploaded_files(client: ollama.Client, tiny_gguf: Path) -> None:
    digest = client.create_blob(tiny_gguf)
    events = list(
        client.create(
            "made:1",
            files={"tiny.gguf": digest},
            system="be brief",
            parameters={"temperature": 0.5, "stop": ["x"]},
            template="{{ .Prompt }}",
            stream=True,
        )
    )
    assert events[-1].status == "success"
    assert any(e.status == "writing manifest" for e in events)
    shown = client.show("made:1")
    assert shown.template == "{{ .Prompt }}" and "temperature" in (shown.parameters or "")
    assert (
        client.generate("made:1", "hi", options={"num_predict": 2, "temperature": 0}).eval_count
        == 2
    )


def test_create_from_an_existing_image(client: ollama.Client, server: ServerProcess) -> None:
    out = client.create("derived:1", from_="tiny-sys", system="other", stream=False)
    assert out.status == "success"
    raw = post(server, "/api/show", {"model": "derived:1"}).json()
    assert raw["system"] == "other" and raw["template"] == TEMPLATE


def test_create_errors_are_400(server: ServerProcess) -> None:
    cases = [
        ({"model": "m"}, "neither 'from' or 'files' was specified"),
        ({"model": "m", "files": {"a.gguf": "sha256:12"}}, "invalid digest format"),
        (
            {"model": "m", "files": {"/etc/a.gguf": "sha256:" + "0" * 64}},
            "file path must be relative",
        ),
        ({"model": "Bad Name", "from": "tiny"}, "invalid model name"),
        (
            {"model": "m", "from": "tiny", "adapters": {"a": "sha256:" + "0" * 64, "b": "x"}},
            "only one adapter is currently supported",
        ),
    ]
    for body, message in cases:
        r = post(server, "/api/create", body)
        assert (r.status_code, r.json()) == (400, {"error": message}), body


# --- validation, middleware -------------------------------------------------------------------


def test_malformed_bodies_are_400_not_500(server: ServerProcess) -> None:
    r = post(server, "/api/generate", content=b"")
    assert (r.status_code, r.json()) == (400, {"error": "missing request body"})
    r = post(server, "/api/generate", content=b"{bad")
    assert r.status_code == 400 and r.json()["error"].startswith("invalid JSON")
    r = post(server, "/api/generate", content=b"[1]")
    assert r.status_code == 400
    r = post(server, "/api/generate", {"model": "tiny", "prompt": 5})
    assert r.status_code == 400 and r.json()["error"].startswith("prompt:")
    r = post(server, "/api/chat", {"model": "tiny", "messages": [{"content": "x"}]})
    assert r.status_code == 400 and r.json()["error"].startswith("messages.0.role:")
    r = post(server, "/api/generate", {"model": "tiny", "prompt": "x", "keep_alive": "soon"})
    assert r.status_code == 400 and "keep_alive" in r.json()["error"]
    r = post(server, "/api/generate", {"model": "tiny", "prompt": "x", "think": "loud"})
    assert (r.status_code, r.json()) == (400, {"error": "invalid think value: 'loud'"})
    r = post(server, "/api/chat", {"messages": []})
    assert (r.status_code, r.json()) == (400, {"error": "model is required"})


def test_curl_style_form_content_type_is_read_as_json(server: ServerProcess) -> None:
    r = post(
        server,
        "/api/generate",
        {"model": "tiny", "prompt": "x", "stream": False},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json()["done"] is True


def test_host_check_refuses_foreign_host_headers(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/", headers={"Host": "evil.example.com"}).status_code == 403
    for host in ("localhost:1234", "box.local", "10.1.2.3", "[::1]:80", "a.internal"):
        assert httpx.get(server.url + "/", headers={"Host": host}).status_code == 200, host


def test_cors_preflight_and_origins(server: ServerProcess) -> None:
    pre = httpx.options(
        server.url + "/api/chat",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "Content-Type" in pre.headers["access-control-allow-headers"]
    r = httpx.get(server.url + "/api/version", headers={"Origin": "app://obsidian.md"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "app://obsidian.md"
    assert (
        httpx.get(server.url + "/", headers={"Origin": "https://evil.example"}).status_code == 403
    )


# --- concurrency ------------------------------------------------------------------------------


def test_fifty_concurrent_clients_are_all_answered(server: ServerProcess) -> None:
    async def main() -> list[ollama.ChatResponse]:
        client = ollama.AsyncClient(host=server.url)
        calls = [
            client.chat(
                "tiny-sys",
                [{"role": "user", "content": f"question {i}"}],
                options={"num_predict": 4},
            )
            for i in range(50)
        ]
        return list(await asyncio.gather(*calls))

    answers = asyncio.run(asyncio.wait_for(main(), 120))
    assert len(answers) == 50
    assert all(a.done and a.eval_count == 4 for a in answers)


# --- registry ---------------------------------------------------------------------------------


def test_push_and_pull_through_the_api(client: ollama.Client, registry: Any) -> None:
    remote = f"{registry.host}/team/tiny:1"
    client.copy("tiny", remote)
    events = list(client.push(remote, stream=True))
    assert events[-1].status == "success"
    assert any((e.status or "").startswith("pushing ") for e in events)
    client.delete(remote)
    assert remote not in {m.model for m in client.list().models}
    pulled = client.pull(remote, stream=False)
    assert pulled.status == "success"
    assert remote in {m.model for m in client.list().models}
    assert client.generate(remote, "x", options={"num_predict": 2}).eval_count == 2
    with pytest.raises(ollama.ResponseError) as err:
        client.push("not-here:1")
    assert err.value.status_code == 404


def test_thinking_output_is_split_from_the_answer(client: ollama.Client) -> None:
    assert "thinking" in (client.show("tiny-think").capabilities or [])
    # Greedy: sampled, the random model can end or emit only blanks at once.
    greedy = {"temperature": 0}
    thought = client.chat(
        "tiny-think", [{"role": "user", "content": "q"}], stream=False, options=greedy
    )
    assert thought.message.thinking and thought.message.content == ""  # think defaults to on
    streamed = list(client.generate("tiny-think", "q", think=True, stream=True, options=greedy))
    assert "".join(c.thinking or "" for c in streamed).strip()
    plain = client.generate("tiny-think", "q", think=False, stream=False, options=greedy)
    assert plain.thinking is None and plain.response

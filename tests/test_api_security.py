"""The API as an attacker meets it: no host files through ``/api/create``, no crash from deep
JSON, no role or digest outside Ollama's, no credentials-file path in an error.

Real servers (``python -m ocillm serve``) on free loopback ports, the tiny GGUF, real HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_fixtures import ServerProcess, build_model

from ocillm.config import Settings
from ocillm.registry.credentials import CredentialError, CredentialSources

QUIET = {"OCILLM_RUNNER_SPARE": "0"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-security")
    build_model(home / "models", tiny_gguf, "tiny", "PARAMETER num_predict 2\n")
    proc = ServerProcess(home, QUIET).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Path:
    """``/srv/models`` of the opt-in server: a GGUF, a subdirectory, and two escaping links."""
    root = tmp_path_factory.mktemp("create-paths")
    (root / "models").mkdir()
    shutil.copy(tiny_gguf, root / "models" / "tiny.gguf")
    (root / "models" / "sub").mkdir()
    shutil.copy(tiny_gguf, root / "models" / "sub" / "inner.gguf")
    outside = root / "outside"
    outside.mkdir()
    shutil.copy(tiny_gguf, outside / "secret.gguf")
    (root / "models" / "link.gguf").symlink_to(outside / "secret.gguf")
    (root / "models" / "linkdir").symlink_to(outside)
    (root / "models" / "mixed").mkdir()
    (root / "models" / "mixed" / "a.gguf").symlink_to(outside / "secret.gguf")
    return root


@pytest.fixture(scope="module")
def opt_in(tmp_path_factory: pytest.TempPathFactory, allowed: Path) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-create-paths")
    env = {**QUIET, "OCILLM_CREATE_PATHS": str(allowed / "models")}
    proc = ServerProcess(home, env).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def create(server: ServerProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/api/create", json={**body, "stream": False}, timeout=60)


def tag_names(server: ServerProcess) -> set[str]:
    return {m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]}


def refusal(value: str) -> str:
    return (
        f'from "{value}" names a file on the server: over the API, upload it with '
        'POST /api/blobs and name it in "files", or set OCILLM_CREATE_PATHS'
    )


# --- 5. /api/create reads no host path ----------------------------------------------------------


def test_create_refuses_host_paths_alike_whether_they_exist_or_not(
    server: ServerProcess, tiny_gguf: Path
) -> None:
    up = os.path.relpath(tiny_gguf, server.models)
    values = [
        str(tiny_gguf),  # exists
        str(tiny_gguf.parent),  # a directory with a GGUF in it
        str(tiny_gguf) + ".missing",  # does not exist
        "../../../../" + str(tiny_gguf).lstrip("/"),
        up,  # relative to the store: what the builder used as its directory
        "/root",
        "/nonexistent/dir",
        "~/model.gguf",
        "./model.gguf",
        "model.gguf",
        "C:\\models\\x.gguf",
    ]
    for value in values:
        r = create(server, {"model": "stolen", "from": value})
        assert (r.status_code, r.json()) == (400, {"error": refusal(value)}), value
    assert "stolen:latest" not in {n.split("/")[-1] for n in tag_names(server)}
    assert all("stolen" not in name for name in tag_names(server))


def test_create_names_store_files_only_through_blobs(
    server: ServerProcess, tiny_gguf: Path
) -> None:
    # A reference is never looked up as a file beside the store, even when one exists there.
    (server.models / "sneaky").mkdir(exist_ok=True)
    shutil.copy(tiny_gguf, server.models / "sneaky" / "x.gguf")
    r = create(server, {"model": "m2", "from": "sneaky/x.gguf"})
    assert (r.status_code, r.json()) == (400, {"error": refusal("sneaky/x.gguf")})
    # A blob already in the store can be named by digest, or by a store blob path (what
    # `ollama show --modelfile` prints); it is taken from the store, never from that path.
    digest = "sha256:" + hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 200
    for value in (digest, "/elsewhere/.ollama/models/blobs/" + digest.replace(":", "-")):
        r = create(server, {"model": "by-blob", "from": value})
        assert (r.status_code, r.json()["status"]) == (200, "success"), (value, r.text)
    missing = "sha256:" + "1" * 64
    r = create(server, {"model": "m3", "from": missing})
    assert r.status_code == 400
    assert r.json()["error"].startswith(f'blob "{missing}" not found')


def test_create_paths_opt_in_is_confined_to_its_tree(opt_in: ServerProcess, allowed: Path) -> None:
    models = allowed / "models"
    for value in (str(models / "tiny.gguf"), "tiny.gguf", str(models / "sub")):
        r = create(opt_in, {"model": "ok", "from": value})
        assert (r.status_code, r.json()["status"]) == (200, "success"), (value, r.text)
    outside = f"the path is outside OCILLM_CREATE_PATHS ({models})"
    escapes = [
        str(allowed / "outside" / "secret.gguf"),  # exists, outside
        str(allowed / "outside" / "nothing.gguf"),  # does not exist, outside
        "/etc",
        "../outside/secret.gguf",  # .. out of the tree
        str(models / ".." / "outside" / "secret.gguf"),
        str(models / "link.gguf"),  # a symlink out of the tree
        str(models / "linkdir" / "secret.gguf"),  # through a symlinked directory
        str(models / "mixed"),  # a directory holding a link out of the tree
    ]
    for value in escapes:
        r = create(opt_in, {"model": "escape", "from": value})
        assert (r.status_code, r.json()) == (400, {"error": f'from "{value}": {outside}'}), value
    assert not any("escape" in name for name in tag_names(opt_in))


# --- 6. deep JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 5_000, 300])
def test_deeply_nested_json_is_400_and_keeps_the_connection(
    server: ServerProcess, depth: int
) -> None:
    deep = b'{"model":"tiny","prompt":"x","options":' + b"[" * depth + b"]" * depth + b"}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/api/generate", content=deep)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("invalid JSON"), r.json()
        assert r.headers.get("connection", "").lower() != "close"
        first = r.extensions["network_stream"].get_extra_info("client_addr")
        again = client.get("/api/version")
        assert again.status_code == 200
        assert again.extensions["network_stream"].get_extra_info("client_addr") == first
        r = client.post("/v1/chat/completions", content=deep.replace(b'"prompt"', b'"x"'))
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("invalid JSON")


# --- 11. roles, digests, the credentials file ---------------------------------------------------


def test_chat_refuses_roles_ollama_does_not_have(server: ServerProcess) -> None:
    body = {"model": "tiny", "stream": False, "messages": [{"role": "bogus", "content": "hi"}]}
    r = httpx.post(server.url + "/api/chat", json=body, timeout=60)
    assert (r.status_code, r.json()) == (
        400,
        {"error": 'invalid role "bogus": must be one of "system", "user", "assistant" or "tool"'},
    )
    body["messages"] = [{"role": "USER", "content": "hi"}]  # lower-cased, as Ollama does
    assert httpx.post(server.url + "/api/chat", json=body, timeout=60).status_code == 200


def test_blob_digests_are_lowercase_hex(server: ServerProcess) -> None:
    data = b"upper case blob"
    hexdigest = hashlib.sha256(data).hexdigest()
    for digest in (f"sha256:{hexdigest.upper()}", f"sha256-{hexdigest.upper()}"):
        r = httpx.post(f"{server.url}/api/blobs/{digest}", content=data)
        assert (r.status_code, r.json()) == (400, {"error": "invalid digest format"})
        r = httpx.head(f"{server.url}/api/blobs/{digest}")
        assert r.status_code == 400
    r = httpx.post(
        f"{server.url}/api/create",
        json={"model": "m", "files": {"a.gguf": f"sha256:{hexdigest.upper()}"}},
    )
    assert (r.status_code, r.json()) == (400, {"error": "invalid digest format"})
    assert httpx.post(f"{server.url}/api/blobs/sha256:{hexdigest}", content=data).status_code == 201


def test_credential_errors_do_not_name_the_file(tmp_path: Path) -> None:
    secret_dir = tmp_path / "very-secret-place"
    secret_dir.mkdir()
    config = secret_dir / "config.json"
    config.write_text(json.dumps({"auths": {"r.example": {"auth": "!!notbase64"}}}))
    settings = Settings.from_env(
        {"HOME": str(tmp_path), "DOCKER_CONFIG": str(secret_dir), "REGISTRY_AUTH_FILE": str(config)}
    )
    with pytest.raises(CredentialError) as err:
        CredentialSources.from_settings(settings).find("r.example")
    assert "very-secret-place" not in str(err.value) and str(tmp_path) not in str(err.value)
    assert "credentials file" in str(err.value)


def test_a_huge_n_is_refused_at_once(server: ServerProcess) -> None:
    # Found by schemathesis: n=9464922260 generated choices until the client gave up.
    for path, extra in (
        ("/v1/completions", {"prompt": "x"}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
    ):
        body = {"model": "tiny", "n": 9464922260, **extra}
        r = httpx.post(server.url + path, json=body, timeout=10)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"] == "n must be at most 128, got 9464922260"

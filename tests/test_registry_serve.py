"""`ocillm serve` answers the OCI distribution API from its store under /v2/.

Real parts: a live `python -m ocillm serve` on a free loopback port, skopeo, oras-py, ocillm's
own pull, and a replay of the exact requests Ollama's client makes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import oras.client
import pytest
from server_fixtures import ServerProcess, build_model

from ocillm.oci.reference import parse_reference
from ocillm.registry import TransferOptions, pull, push
from ocillm.registry.credentials import CredentialSources
from ocillm.store import Store

KEY = "k3y-for-tests"


@pytest.fixture
def daemon(tmp_path: Path, tiny_gguf: Path) -> Iterator[ServerProcess]:
    home = tmp_path / "daemon"
    build_model(home / "models", tiny_gguf, "ghcr.io/acme/bot:1", "SYSTEM be brief\n")
    build_model(home / "models", tiny_gguf, "ghcr.io/acme/bot:2")
    build_model(home / "models", tiny_gguf, "127.0.0.1:5000/team/tiny:1")
    server = ServerProcess(home, {"OCILLM_REGISTRY_WRITE": "1"}).start()
    yield server
    server.stop()


@pytest.fixture
def keyed(tmp_path: Path, tiny_gguf: Path) -> Iterator[ServerProcess]:
    home = tmp_path / "keyed"
    build_model(home / "models", tiny_gguf, "ghcr.io/acme/bot:1")
    server = ServerProcess(home, {"OCILLM_API_KEY": KEY}).start()
    yield server
    server.stop()


def test_manifest_by_tag_and_digest_with_docker_content_digest(daemon: ServerProcess) -> None:
    r = httpx.get(f"{daemon.url}/v2/ghcr.io/acme/bot/manifests/1")
    assert r.status_code == 200
    digest = r.headers["docker-content-digest"]
    assert digest == "sha256:" + hashlib.sha256(r.content).hexdigest()
    assert r.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json"
    head = httpx.head(f"{daemon.url}/v2/ghcr.io/acme/bot/manifests/{digest}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(r.content))
    assert head.headers["docker-content-digest"] == digest


def test_accept_negotiation_refuses_a_docker_only_accept_for_oci(daemon: ServerProcess) -> None:
    docker_only = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    r = httpx.get(f"{daemon.url}/v2/ghcr.io/acme/bot/manifests/1", headers=docker_only)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    missing = httpx.get(f"{daemon.url}/v2/ghcr.io/acme/bot/manifests/nope")
    assert missing.status_code == 404


def test_blob_range_gives_206_and_the_exact_bytes(daemon: ServerProcess) -> None:
    m = httpx.get(f"{daemon.url}/v2/ghcr.io/acme/bot/manifests/1").json()
    layer = m["layers"][0]
    url = f"{daemon.url}/v2/ghcr.io/acme/bot/blobs/{layer['digest']}"
    whole = httpx.get(url)
    assert whole.status_code == 200 and len(whole.content) == layer["size"]
    assert "sha256:" + hashlib.sha256(whole.content).hexdigest() == layer["digest"]
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{layer['size']}"
    assert part.content == whole.content[100:200]
    head = httpx.head(url)
    assert head.headers["content-length"] == str(layer["size"])
    assert head.headers["docker-content-digest"] == layer["digest"]


def test_tags_list_and_catalog_page_with_n_and_last(daemon: ServerProcess) -> None:
    r = httpx.get(f"{daemon.url}/v2/ghcr.io/acme/bot/tags/list", params={"n": 1})
    assert r.json() == {"name": "ghcr.io/acme/bot", "tags": ["1"]}
    assert r.headers["link"] == '</v2/ghcr.io/acme/bot/tags/list?n=1&last=1>; rel="next"'
    r2 = httpx.get(f"{daemon.url}/v2/ghcr.io/acme/bot/tags/list", params={"n": 1, "last": "1"})
    assert r2.json()["tags"] == ["2"] and "link" not in r2.headers
    cat = httpx.get(f"{daemon.url}/v2/_catalog").json()
    assert cat == {"repositories": ["127.0.0.1_5000/team/tiny", "ghcr.io/acme/bot"]}
    first = httpx.get(f"{daemon.url}/v2/_catalog", params={"n": 1})
    assert first.json()["repositories"] == ["127.0.0.1_5000/team/tiny"]
    assert 'rel="next"' in first.headers["link"]


def test_skopeo_inspects_and_copies_from_the_daemon(daemon: ServerProcess, tmp_path: Path) -> None:
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false",
         f"docker://{daemon.host}/127.0.0.1_5000/team/tiny:1"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(raw.stdout)["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    out = tmp_path / "copied"
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false",
         f"docker://{daemon.host}/ghcr.io/acme/bot:1", f"oci:{out}:bot"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    index = json.loads((out / "index.json").read_text())
    want = httpx.get(f"{daemon.url}/v2/ghcr.io/acme/bot/manifests/1").headers
    assert index["manifests"][0]["digest"] == want["docker-content-digest"]


def test_oras_py_pulls_the_gguf(daemon: ServerProcess, tmp_path: Path) -> None:
    client = oras.client.OrasClient(hostname=daemon.host, insecure=True)
    files = client.pull(target=f"{daemon.host}/ghcr.io/acme/bot:1", outdir=str(tmp_path / "o"))
    assert any(Path(f).name == "model.gguf" for f in files)


def test_ocillm_pulls_from_one_daemon_into_another_store(
    daemon: ServerProcess, tmp_path: Path
) -> None:
    other = Store.open(tmp_path / "other")
    result = pull(parse_reference(f"{daemon.host}/ghcr.io/acme/bot:1"), other)
    want = httpx.get(f"{daemon.url}/v2/ghcr.io/acme/bot/manifests/1").headers
    assert result.digest == want["docker-content-digest"]
    assert other.resolve(parse_reference(f"{daemon.host}/ghcr.io/acme/bot:1"))


def test_short_names_map_to_the_default_registry(daemon: ServerProcess, tiny_gguf: Path) -> None:
    build_model(daemon.models, tiny_gguf, "tiny:latest")
    r = httpx.get(f"{daemon.url}/v2/library/tiny/manifests/latest")
    long = httpx.get(f"{daemon.url}/v2/registry.ollama.ai/library/tiny/manifests/latest")
    assert r.status_code == 200 and r.content == long.content


def test_ollama_client_request_sequence(daemon: ServerProcess, tiny_gguf: Path) -> None:
    """What `ollama pull --insecure HOST:PORT/library/tiny-ollama` sends (server/images.go,
    server/download.go): the manifest with a Docker-only Accept, then per blob a HEAD for the
    size, a GET that must give a Location (a 200 without one fails with "no Location header"),
    and Range GETs without Authorization on that URL."""
    store = Store.open(daemon.models)
    build_model(daemon.models, tiny_gguf, "tiny-src:1", "SYSTEM hi\n")
    push_target = parse_reference(f"{daemon.host}/library/tiny-ollama:latest")
    push(parse_reference("tiny-src:1"), store, target=push_target, fmt="ollama")
    ua = {"User-Agent": "ollama/0.33.0 (amd64 linux) Go/go1.24.1"}
    base = f"http://{daemon.host}/v2/library/tiny-ollama"
    with httpx.Client(headers=ua, follow_redirects=False) as http:
        m = http.get(
            f"{base}/manifests/latest",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        assert m.status_code == 200
        assert m.headers["content-type"] == "application/vnd.docker.distribution.manifest.v2+json"
        manifest = m.json()
        for blob in [manifest["config"], *manifest["layers"]]:
            url = f"{base}/blobs/{blob['digest']}"
            total = int(http.head(url).headers["content-length"])
            assert total == blob["size"]
            probe = http.get(url)  # Go follows same-host redirects; we answer 200 + Location
            assert probe.status_code in (200, 307)
            direct = probe.headers["location"]
            data = bytearray()
            part = 100_000
            for start in range(0, total, part):
                end = min(start + part, total) - 1
                r = httpx.get(direct, headers={"Range": f"bytes={start}-{end}"})
                assert r.status_code == 206
                data += r.content
            assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"]


def test_write_side_is_verified_before_visible(daemon: ServerProcess, tmp_path: Path) -> None:
    base = f"{daemon.url}/v2/team/pushed"
    blob = b"layer bytes " * 1000
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    start = httpx.post(f"{base}/blobs/uploads/")
    assert start.status_code == 202
    location = daemon.url + start.headers["location"]
    bad = httpx.put(location, params={"digest": "sha256:" + "0" * 64}, content=blob)
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert httpx.head(f"{base}/blobs/{'sha256:' + '0' * 64}").status_code == 404
    start = httpx.post(f"{base}/blobs/uploads/")
    location = daemon.url + start.headers["location"]
    patched = httpx.patch(location, content=blob[:5000], headers={"Content-Range": "0-4999"})
    assert patched.status_code == 202 and patched.headers["range"] == "0-4999"
    done = httpx.put(location, params={"digest": digest}, content=blob[5000:])
    assert done.status_code == 201 and done.headers["docker-content-digest"] == digest
    assert httpx.get(f"{base}/blobs/{digest}").content == blob
    missing = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "a/b", "digest": "sha256:" + "1" * 64, "size": 1},
        "layers": []}).encode()  # fmt: skip
    refused = httpx.put(
        f"{base}/manifests/1",
        content=missing,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    # a whole image pushed by ocillm's own client into the daemon
    src = Store.open(daemon.models)
    result = push(parse_reference("ghcr.io/acme/bot:1"), src, target=
                  parse_reference(f"{daemon.host}/team/pushed:2"))  # fmt: skip
    # /v2/team/pushed is a short name: the default registry's team/pushed
    stored = Store.open(daemon.models).resolve(parse_reference("team/pushed:2"))
    assert stored.digest == result.digest


def test_read_only_unless_registry_write(keyed: ServerProcess) -> None:
    r = httpx.post(
        f"{keyed.url}/v2/team/x/blobs/uploads/", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert r.status_code == 405 and "OCILLM_REGISTRY_WRITE" in r.json()["errors"][0]["message"]


def test_api_key_as_bearer_or_basic_with_any_user(keyed: ServerProcess, tmp_path: Path) -> None:
    url = f"{keyed.url}/v2/ghcr.io/acme/bot/manifests/1"
    denied = httpx.get(url)
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(url, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(url, auth=("anyone", KEY)).status_code == 200
    assert httpx.get(url, auth=("anyone", "wrong")).status_code == 401
    subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", f"ci:{KEY}",
         f"docker://{keyed.host}/ghcr.io/acme/bot:1"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    creds = CredentialSources(username="ci", password=KEY)
    other = Store.open(tmp_path / "other")
    pull(parse_reference(f"{keyed.host}/ghcr.io/acme/bot:1"), other,
         options=TransferOptions(credentials=creds))  # fmt: skip


def test_referrers_lists_manifests_whose_subject_is_the_image(daemon: ServerProcess) -> None:
    subject = httpx.get(f"{daemon.url}/v2/ghcr.io/acme/bot/manifests/1")
    empty = b"{}"
    empty_digest = "sha256:" + hashlib.sha256(empty).hexdigest()
    base = f"{daemon.url}/v2/ghcr.io/acme/bot"
    httpx.post(f"{base}/blobs/uploads/", params={"digest": empty_digest}, content=empty)
    sbom = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": subject.headers["docker-content-digest"], "size": len(subject.content)},
    }).encode()  # fmt: skip
    digest = "sha256:" + hashlib.sha256(sbom).hexdigest()
    put = httpx.put(
        f"{base}/manifests/{digest}",
        content=sbom,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert (
        put.status_code == 201
        and put.headers["oci-subject"] == subject.headers["docker-content-digest"]
    )
    r = httpx.get(f"{base}/referrers/{subject.headers['docker-content-digest']}")
    assert r.headers["content-type"].startswith("application/vnd.oci.image.index.v1+json")
    found = r.json()["manifests"]
    assert [m["digest"] for m in found] == [digest]
    assert found[0]["artifactType"] == "application/spdx+json"
    other = httpx.get(
        f"{base}/referrers/{subject.headers['docker-content-digest']}",
        params={"artifactType": "x/none"},
    )
    assert (
        other.json()["manifests"] == [] and other.headers["oci-filters-applied"] == "artifactType"
    )

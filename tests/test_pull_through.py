"""`serve --mirror-of` / OCILLM_MIRROR_OF: the daemon's /v2/ as a pull-through cache of an
upstream Distribution with Basic auth (the daemon's own credentials), behind a recording proxy
so the test sees every upstream request: a cold pull fetches, a warm one makes no upstream blob
request, and concurrent requests for one blob share one upstream download."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import BASIC_PASSWORD, BASIC_USERNAME
from server_fixtures import ServerProcess, build_model

from ocillm.oci.reference import parse_reference
from ocillm.registry import TransferOptions, pull, push
from ocillm.registry.credentials import CredentialSources
from ocillm.store import Store


@pytest.fixture
def upstream(registry_basic: Any, fault_proxy_factory: Any, tmp_path: Path, tiny_gguf: Path) -> Any:
    proxy = fault_proxy_factory(registry_basic)
    models = tmp_path / "src"
    build_model(models, tiny_gguf, "team/tiny:1", "SYSTEM cached\n")
    creds = CredentialSources(username=BASIC_USERNAME, password=BASIC_PASSWORD)
    push(parse_reference("team/tiny:1"), Store.open(models),
         target=parse_reference(f"{proxy.host}/team/tiny:1"),
         options=TransferOptions(credentials=creds))  # fmt: skip
    proxy.source = Store.open(models)
    return proxy


@pytest.fixture
def cache(upstream: Any, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "cache",
        {
            "OCILLM_MIRROR_OF": upstream.host,
            "OCILLM_REGISTRY_USERNAME": BASIC_USERNAME,
            "OCILLM_REGISTRY_PASSWORD": BASIC_PASSWORD,
        },
    ).start()
    yield server
    server.stop()


def _blob_gets(proxy: Any) -> list[str]:
    return [r.path for r in proxy.requests if r.method == "GET" and "/blobs/sha256:" in r.path]


def test_cold_then_warm_pull_through_the_daemon(
    cache: ServerProcess, upstream: Any, tmp_path: Path
) -> None:
    ref = parse_reference(f"{cache.host}/team/tiny:1")
    cold = pull(ref, Store.open(tmp_path / "a"))
    assert len(_blob_gets(upstream)) >= 2  # config and model at least
    want = upstream.source.resolve(parse_reference("team/tiny:1")).digest
    assert cold.digest == want
    before = len(_blob_gets(upstream))
    warm = pull(ref, Store.open(tmp_path / "b"))
    assert warm.digest == want
    assert len(_blob_gets(upstream)) == before  # no upstream blob request when warm
    # the cache keeps the image under the upstream's name
    cached = Store.open(cache.models).resolve(parse_reference(f"{upstream.host}/team/tiny:1"))
    assert cached.digest == want


def test_concurrent_requests_share_one_upstream_download(
    cache: ServerProcess, upstream: Any
) -> None:
    src = upstream.source
    manifest = src.manifest(src.resolve(parse_reference("team/tiny:1")))
    model = max(manifest.layers, key=lambda layer: layer.size)
    url = f"{cache.url}/v2/team/tiny/blobs/{model.digest}"
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: httpx.get(url, timeout=60).content, range(4)))
    for body in bodies:
        assert "sha256:" + hashlib.sha256(body).hexdigest() == model.digest
    assert _blob_gets(upstream).count(f"/v2/team/tiny/blobs/{model.digest}") == 1


def test_missing_upstream_image_is_404(cache: ServerProcess) -> None:
    r = httpx.get(f"{cache.url}/v2/team/none/manifests/1")
    assert r.status_code == 404 and "upstream" in r.json()["errors"][0]["message"]

"""Faults a stock Distribution never produces, injected by a proxy in front of a real one.

``fault_proxy`` (registry-fixtures/fault_proxy.py) forwards to a real ``docker-registry`` and
answers chosen requests with 413, 429, 5xx or 401, adds ``OCI-Chunk-Min-Length``, or drops the
connection; it records every request, so each test proves both that the image arrived intact
(pulled back and its digests compared) and what the client did to get it there. Backoff is made
short (``TransferOptions(backoff=…)``, ``OCILLM_REGISTRY_BACKOFF``) so nothing sleeps long.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import BASIC_PASSWORD, BASIC_USERNAME, CLI
from test_registry_transfer import build_tiny, error_lines

from ocillm.config import Settings
from ocillm.errors import RegistryError, UsageError
from ocillm.image import ImageContent, Piece, Role, write_manifest
from ocillm.oci import parse_reference
from ocillm.registry import TransferOptions, pull, push
from ocillm.registry.client import RegistryClient
from ocillm.registry.credentials import CredentialSources
from ocillm.registry.download import partial_files
from ocillm.store import Store
from ocillm.store.copyfile import hash_file

MiB = 1 << 20
SIZE = 6 * MiB
FAST = TransferOptions(retries=4, backoff=0.01)
FAST_ENV_RETRIES = 3
FAST_ENV = {"OCILLM_REGISTRY_RETRIES": str(FAST_ENV_RETRIES), "OCILLM_REGISTRY_BACKOFF": "0.01"}


def weight_image(store: Store, ref: str, tmp_path: Path, size: int = SIZE) -> tuple[str, str]:
    """A model image whose one layer is ``size`` random bytes: (manifest digest, layer digest)."""
    data = tmp_path / f"weights-{size}.bin"
    with open(data, "wb") as f:
        left = size
        while left:
            n = min(MiB, left)
            f.write(os.urandom(n))
            left -= n
    imported = store.blobs.import_file(data)
    manifest, config = write_manifest(
        ImageContent(pieces=[Piece(Role.MODEL, imported.digest, imported.size)]), "modelpack"
    )
    store.blobs.put_bytes(config)
    desc = store.put_manifest(manifest)
    store.tag(parse_reference(ref), desc)
    return desc.digest, imported.digest


def pull_back(ref: str, tmp_path: Path, layer: str | None = None) -> str:
    """Pull ``ref`` (straight from the registry) into a fresh store; the manifest digest."""
    store = Store.open(tmp_path / f"back-{len(list(tmp_path.iterdir()))}")
    result = pull(parse_reference(ref), store, options=FAST)
    if layer is not None:
        assert hash_file(store.blobs.path(layer))[0] == layer
    return result.digest


def blob_path(digest: str) -> str:
    """A regex for request paths naming ``digest`` (raw or URL-encoded, in path or query)."""
    return re.escape(digest).replace(":", "(?::|%3A)")


def uploads(proxy: Any, method: str, digest: str | None = None) -> list[Any]:
    """The requests of ``method`` on upload sessions (for ``digest``, when given)."""
    found = proxy.matching(method, r"/blobs/uploads/")
    if digest is not None:
        found = [r for r in found if re.search(blob_path(digest), r.path)]
    return found


def patch_sizes(proxy: Any) -> list[int]:
    return [r.body_size for r in uploads(proxy, "PATCH") if r.status == 202]


# -- chunked uploads ------------------------------------------------------------------------


def test_413_to_the_monolithic_put_switches_to_chunks_of_at_least_the_min_length(
    fault_proxy: Any, registry: Any, tmp_path: Path
) -> None:
    ref = f"{fault_proxy.host}/team/big:413"
    store = Store.open(tmp_path / "src")
    manifest, layer = weight_image(store, ref, tmp_path)
    # A front end that refuses any PUT body over 1 MiB, and a registry that wants 4 MiB chunks.
    fault_proxy.add_rule("PUT", r"/blobs/uploads/", min_body=MiB, status=413)
    fault_proxy.add_rule(
        "POST", r"/blobs/uploads/$", add_headers={"OCI-Chunk-Min-Length": str(4 * MiB)}
    )

    # retries=1: switching to chunks after a 413 is not a retry and spends no attempt.
    opts = TransferOptions(retries=1)
    assert push(parse_reference(ref), store, options=opts).digest == manifest

    (refused, commit) = uploads(fault_proxy, "PUT", layer)
    assert (refused.status, refused.body_size) == (413, SIZE)
    assert (commit.status, commit.body_size) == (201, 0)
    patches = uploads(fault_proxy, "PATCH")
    assert [p.body_size for p in patches] == [4 * MiB, 2 * MiB]  # >= the minimum, last excepted
    assert [p.header("Content-Range") for p in patches] == [
        f"0-{4 * MiB - 1}",
        f"{4 * MiB}-{SIZE - 1}",
    ]
    assert all(p.status == 202 for p in patches)
    # The config, under the limit, went in one PUT as usual.
    small = [r for r in uploads(fault_proxy, "PUT") if 0 < r.body_size < MiB]
    assert small and all(r.status == 201 for r in small)
    assert pull_back(f"{registry.host}/team/big:413", tmp_path, layer) == manifest


def test_min_length_raises_a_smaller_chunk_size_asked_for(
    fault_proxy: Any, registry: Any, tmp_path: Path
) -> None:
    ref = f"{fault_proxy.host}/team/big:minlen"
    store = Store.open(tmp_path / "src")
    manifest, layer = weight_image(store, ref, tmp_path)
    fault_proxy.add_rule(
        "POST", r"/blobs/uploads/$", add_headers={"OCI-Chunk-Min-Length": str(MiB)}
    )

    opts = TransferOptions(chunk_size=256 * 1024, retries=2, backoff=0.01)
    assert push(parse_reference(ref), store, options=opts).digest == manifest

    assert all(r.body_size == 0 for r in uploads(fault_proxy, "PUT"))  # chunks only
    layer_patches = [r for r in uploads(fault_proxy, "PATCH") if r.body_size == MiB]
    assert len(layer_patches) == SIZE // MiB  # 1 MiB each, not the 256 KiB asked for
    assert all(size <= MiB for size in patch_sizes(fault_proxy))
    assert pull_back(f"{registry.host}/team/big:minlen", tmp_path, layer) == manifest


def test_413_to_a_chunk_halves_the_chunk_size_until_it_fits(
    fault_proxy: Any, registry: Any, tmp_path: Path
) -> None:
    ref = f"{fault_proxy.host}/team/big:nginx"
    store = Store.open(tmp_path / "src")
    manifest, layer = weight_image(store, ref, tmp_path)
    # nginx's default client_max_body_size (1m) in front of the registry: every body over it.
    for method in ("PUT", "PATCH"):
        fault_proxy.add_rule(method, r"/blobs/uploads/", min_body=MiB + 1, status=413)

    assert push(parse_reference(ref), store, options=FAST).digest == manifest

    refused = [r.body_size for r in fault_proxy.requests if r.status == 413]
    assert refused == [SIZE, 3 * MiB, 3 * MiB // 2]  # the PUT, then one PATCH per size tried
    sizes = patch_sizes(fault_proxy)
    assert sizes == [768 * 1024] * 8 and sum(sizes) == SIZE
    assert pull_back(f"{registry.host}/team/big:nginx", tmp_path, layer) == manifest


# -- retries --------------------------------------------------------------------------------


def test_5xx_and_dropped_connections_are_retried_with_growing_backoff(
    fault_proxy: Any, registry: Any, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/big:5xx"
    source = Store.open(tmp_path / "src")
    manifest, layer = weight_image(source, ref, tmp_path)
    push(parse_reference(ref), source)

    via = f"{fault_proxy.host}/team/big:5xx"
    fault_proxy.add_rule("GET", r"/manifests/", status=503, times=2)
    fault_proxy.add_rule("GET", blob_path(layer), status=502, times=1)
    fault_proxy.add_rule("GET", blob_path(layer), drop_connection=True, times=1)
    opts = TransferOptions(retries=4, backoff=0.1)
    store = Store.open(tmp_path / "dest")
    assert pull(parse_reference(via), store, options=opts).digest == manifest
    assert hash_file(store.blobs.path(layer))[0] == layer

    gets = fault_proxy.matching("GET", r"/manifests/")
    assert [g.status for g in gets] == [503, 503, 200]
    # Backoff 0.1 s doubling, jitter 0.5x..1.5x: at least 0.05 s, then at least 0.1 s.
    assert gets[1].started - gets[0].finished >= 0.05
    assert gets[2].started - gets[1].finished >= 0.1
    blob = fault_proxy.matching("GET", blob_path(layer))
    assert [(b.status, b.injected) for b in blob] == [
        (502, "status 502"),
        (None, "drop"),
        (200, None),
    ]


def test_upload_restarts_in_a_new_session_after_5xx_and_a_dropped_connection(
    fault_proxy: Any, registry: Any, tmp_path: Path
) -> None:
    ref = f"{fault_proxy.host}/team/big:upload-retry"
    store = Store.open(tmp_path / "src")
    manifest, layer = weight_image(store, ref, tmp_path)
    digest_rule = r"/blobs/uploads/.*digest=" + blob_path(layer)
    fault_proxy.add_rule("PUT", digest_rule, status=503, times=1)
    fault_proxy.add_rule("PUT", digest_rule, drop_connection=True, times=1)

    result = push(parse_reference(ref), store, options=FAST)
    assert result.digest == manifest and result.stats.uploaded == 2

    puts = uploads(fault_proxy, "PUT", layer)
    assert [p.status for p in puts] == [503, None, 201]
    assert puts[0].body_size == SIZE  # the 503 came after the whole body
    sessions = {p.path.split("?", 1)[0] for p in puts}
    assert len(sessions) == 3  # each attempt in its own upload session
    assert pull_back(f"{registry.host}/team/big:upload-retry", tmp_path, layer) == manifest


def test_429_retry_after_is_honoured_on_push_and_pull(
    fault_proxy: Any, registry: Any, tmp_path: Path
) -> None:
    ref = f"{fault_proxy.host}/team/big:429"
    store = Store.open(tmp_path / "src")
    manifest, layer = weight_image(store, ref, tmp_path)
    slow = {"Retry-After": "1"}
    fault_proxy.add_rule("PUT", r"digest=" + blob_path(layer), status=429, headers=slow, times=1)
    fault_proxy.add_rule("GET", r"/manifests/", status=429, headers=slow, times=1)
    fault_proxy.add_rule("GET", blob_path(layer), status=429, headers=slow, times=1)
    # A backoff of 10 ms: any pause near a second is the registry's Retry-After.
    opts = TransferOptions(retries=3, backoff=0.01)

    assert push(parse_reference(ref), store, options=opts).digest == manifest
    dest = Store.open(tmp_path / "dest")
    assert pull(parse_reference(ref), dest, options=opts).digest == manifest
    assert hash_file(dest.blobs.path(layer))[0] == layer

    puts = uploads(fault_proxy, "PUT", layer)
    assert [p.status for p in puts] == [429, 201]
    manifests = fault_proxy.matching("GET", r"/manifests/")
    blobs = fault_proxy.matching("GET", blob_path(layer))
    for first, second in (puts, manifests, blobs):
        assert first.status == 429 and second.status in (200, 201)
        assert 0.95 <= second.started - first.finished < 5


def test_connection_lost_mid_blob_resumes_with_a_range(
    fault_proxy: Any, registry: Any, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/big:resume"
    source = Store.open(tmp_path / "src")
    manifest, layer = weight_image(source, ref, tmp_path)
    push(parse_reference(ref), source)
    cut = MiB + 12345
    fault_proxy.add_rule("GET", blob_path(layer), drop_after=cut, times=1)

    store = Store.open(tmp_path / "dest")
    result = pull(parse_reference(f"{fault_proxy.host}/team/big:resume"), store, options=FAST)
    assert result.digest == manifest
    assert result.stats.downloaded == result.size  # the first bytes were not fetched twice
    assert hash_file(store.blobs.path(layer))[0] == layer and not partial_files(store, layer)

    first, second = fault_proxy.matching("GET", blob_path(layer))
    assert (first.status, first.response_bytes, first.header("Range")) == (200, cut, None)
    assert second.header("Range") == f"bytes={cut}-{SIZE - 1}"
    assert (second.status, second.response_bytes) == (206, SIZE - cut)


# -- tokens ---------------------------------------------------------------------------------


def test_token_refused_mid_transfer_is_renewed_and_the_transfer_goes_on(
    registry_token: Any, fault_proxy_factory: Any, tmp_path: Path,
    ocillm_home: Path,
) -> None:  # fmt: skip
    creds = CredentialSources(username=BASIC_USERNAME, password=BASIC_PASSWORD)
    authed = dataclasses.replace(FAST, credentials=creds)
    proxy = fault_proxy_factory(registry_token)
    ref = f"{proxy.host}/team/big:token"
    store = Store.open(tmp_path / "src")
    manifest, layer = weight_image(store, ref, tmp_path)
    issuer = registry_token.token_issuer
    expired = {
        "WWW-Authenticate": (
            f'Bearer realm="{issuer.realm}",service="ocillm-test-registry",'
            'scope="repository:team/big:pull,push",error="invalid_token"'
        )
    }
    # The token stops being accepted while the big blob streams (upload) and before its GET.
    proxy.add_rule("PUT", r"digest=" + blob_path(layer), status=401, headers=expired, times=1)
    proxy.add_rule("GET", blob_path(layer), status=401, headers=expired, times=1)

    before = len(issuer.requests())
    assert push(parse_reference(ref), store, options=authed).digest == manifest
    pushed = len(issuer.requests())
    dest = Store.open(tmp_path / "dest")
    assert pull(parse_reference(ref), dest, options=authed).digest == manifest
    assert hash_file(dest.blobs.path(layer))[0] == layer

    puts = uploads(proxy, "PUT", layer)
    assert [p.status for p in puts] == [401, 201]
    assert puts[0].body_size == SIZE and puts[1].header("Authorization") == "Bearer <redacted>"
    gets = proxy.matching("GET", blob_path(layer))
    assert [g.status for g in gets] == [401, 200]
    # One token for the push, one after its 401; one for the pull, one after its 401.
    assert pushed - before == 2
    assert len(issuer.requests()) - pushed == 2
    assert all(r.header("Authorization") in (None, "Bearer <redacted>") for r in proxy.requests)


# -- giving up ------------------------------------------------------------------------------


def test_pull_gives_up_after_the_retries_with_one_line_and_exit_1(
    cli: CLI, fault_proxy: Any, registry: Any, tiny_gguf: Path
) -> None:
    ref = f"{fault_proxy.host}/team/tiny:down"
    build_tiny(cli, tiny_gguf, ref)
    cli("push", ref, "--quiet", check=True)
    cli("rm", ref, check=True)
    fault_proxy.reset_log()
    fault_proxy.add_rule("GET", r"/manifests/", status=503)

    out = cli("pull", ref, env=FAST_ENV)
    assert out.returncode == 1
    (line,) = error_lines(out.stderr)
    assert fault_proxy.host in line and "team/tiny:down" in line and "503" in line
    assert len(fault_proxy.matching("GET", r"/manifests/")) == FAST_ENV_RETRIES


def test_push_gives_up_after_the_retries_naming_the_blob_and_status(
    cli: CLI, fault_proxy: Any, tiny_gguf: Path
) -> None:
    ref = f"{fault_proxy.host}/team/tiny:busy"
    build_tiny(cli, tiny_gguf, ref)
    fault_proxy.add_rule("PUT", r"/blobs/uploads/", status=503)

    out = cli("push", ref, env=FAST_ENV)
    assert out.returncode == 1
    (line,) = error_lines(out.stderr)
    assert fault_proxy.host in line and "team/tiny:busy" in line and "HTTP 503" in line
    digest = re.search(r"sha256:[0-9a-f]{64}", line)
    assert digest and f"gave up after {FAST_ENV_RETRIES} attempts" in line
    assert len(uploads(fault_proxy, "PUT", digest.group(0))) == FAST_ENV_RETRIES
    assert not fault_proxy.matching("PUT", r"/manifests/")


def test_drops_that_make_progress_go_on_and_drops_that_do_not_fail_in_one_line(
    cli: CLI, fault_proxy: Any, registry: Any, tiny_gguf: Path, ocillm_home: Path, tmp_path: Path
) -> None:
    ref = f"{fault_proxy.host}/team/tiny:flaky"
    built = build_tiny(cli, tiny_gguf, ref)
    cli("push", ref, "--quiet", check=True)
    store = Store.open(ocillm_home / "models")
    model = max(store.manifest(store.resolve(parse_reference(ref))).layers, key=lambda x: x.size)
    cut = 100_000
    rule = fault_proxy.add_rule("GET", blob_path(model.digest), drop_after=cut)

    # Every connection dies after 100 kB, but each one brings new bytes: the retry count
    # starts over after progress, so the pull gets there, one Range at a time.
    one = {"OCILLM_HOME": str(tmp_path / "a"), "OCILLM_MODELS": str(tmp_path / "a/m")}
    out = cli("pull", ref, "--quiet", env={**FAST_ENV, **one})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == built
    gets = fault_proxy.matching("GET", blob_path(model.digest))
    assert len(gets) == -(-model.size // cut) > FAST_ENV_RETRIES
    assert [g.header("Range") for g in gets[1:]] == [
        f"bytes={i * cut}-{model.size - 1}" for i in range(1, len(gets))
    ]

    # Connections that die before a byte arrives: three in a row end it.
    rule.drop_after = 0
    fault_proxy.reset_log()
    two = {"OCILLM_HOME": str(tmp_path / "b"), "OCILLM_MODELS": str(tmp_path / "b/m")}
    out = cli("pull", ref, env={**FAST_ENV, **two})
    assert out.returncode == 1
    (line,) = error_lines(out.stderr)
    assert fault_proxy.host in line and "team/tiny:flaky" in line and model.digest in line
    assert "no response" in line and "pull again to resume" in line
    assert len(fault_proxy.matching("GET", blob_path(model.digest))) == FAST_ENV_RETRIES


# -- knobs ----------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    client = RegistryClient(
        parse_reference("127.0.0.1:1/x/y:1"), TransferOptions(backoff=1.0, backoff_cap=8.0)
    )
    for attempt, base in ((0, 1.0), (1, 2.0), (2, 4.0), (6, 8.0)):
        delays = [client._backoff(attempt) for _ in range(200)]
        assert all(0.5 * base <= d <= 1.5 * base for d in delays)
        assert len(set(delays)) > 100  # jitter: no two clients retry in step
    knobs = {"OCILLM_REGISTRY_RETRIES": "2", "OCILLM_REGISTRY_BACKOFF": "0.25"}
    opts = TransferOptions.from_settings(Settings.from_env(knobs))
    assert (opts.retries, opts.backoff) == (2, 0.25)
    assert (TransferOptions().retries, TransferOptions().backoff) == (5, 0.5)
    with pytest.raises(UsageError, match="OCILLM_REGISTRY_BACKOFF"):
        Settings.from_env({"OCILLM_REGISTRY_BACKOFF": "soon"})


def test_registry_error_is_raised_not_retried_for_a_plain_4xx(
    fault_proxy: Any, registry: Any, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/big:4xx"
    source = Store.open(tmp_path / "src")
    weight_image(source, ref, tmp_path, size=MiB)
    push(parse_reference(ref), source)
    fault_proxy.add_rule("GET", r"/manifests/", status=400)
    with pytest.raises(RegistryError) as err:
        pull(parse_reference(f"{fault_proxy.host}/team/big:4xx"), Store.open(tmp_path / "d"))
    assert err.value.status == 400 and "INJECTED" in str(err.value)
    assert len(fault_proxy.matching("GET", r"/manifests/")) == 1

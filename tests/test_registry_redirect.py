"""Blob GETs redirected to another host (as S3- or CDN-backed registries do): followed, ranged
when the other host honours Range, never given the registry's Authorization."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from blob_server import BlobServer, redirect_config
from conftest import BASIC_PASSWORD, BASIC_USERNAME, RegistryFactory
from test_registry_faults import BIG, big_image

from ocillm.oci import parse_reference
from ocillm.registry import TransferOptions, pull, push
from ocillm.registry.credentials import Credentials, CredentialSources
from ocillm.store import Store
from ocillm.store.copyfile import hash_file

MiB = 1 << 20


@pytest.fixture
def redirecting(
    registry_factory: RegistryFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Any, BlobServer]]:
    """A Basic-auth registry whose blob GETs 307 to a blob server on ``localhost``."""
    reg = registry_factory("htpasswd", users={BASIC_USERNAME: BASIC_PASSWORD}, start=False)
    server = BlobServer(reg.storage, tmp_path / "cdn", ignore_range=request.param).start()
    try:
        reg.extra_config = redirect_config(server.url)
        reg.start()
        yield reg, server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "redirecting", [False, True], ids=["ranges", "ranges-ignored"], indirect=True
)
def test_redirected_blobs_are_fetched_without_credentials(
    redirecting: tuple[Any, BlobServer], tmp_path: Path
) -> None:
    reg, server = redirecting
    creds = CredentialSources(username=BASIC_USERNAME, password=BASIC_PASSWORD)
    ref = f"{reg.host}/team/big:cdn"
    source = Store.open(tmp_path / "source")
    weight = big_image(source, ref, tmp_path)
    push(parse_reference(ref), source, options=TransferOptions(credentials=creds))

    store = Store.open(tmp_path / "dest")
    options = TransferOptions(range_threshold=8 * MiB, range_segment=8 * MiB, credentials=creds)
    result = pull(parse_reference(ref), store, options=options)
    assert hash_file(store.blobs.path(weight))[0] == weight
    assert result.stats.downloaded == result.size

    seen = server.requests()
    weight_path = f"/docker/registry/v2/blobs/sha256/{weight[7:9]}/{weight[7:]}/data"
    hits = [r for r in seen if r["path"] == weight_path]
    assert hits, seen
    assert not any(r["authorization"] for r in seen)  # credentials stayed with the registry
    ranged = [r for r in hits if r["range"]]
    if server.ignore_range:
        # The first ranged answer was a 200 of the whole blob: one plain GET finished the job.
        assert any(r["range"] is None for r in hits)
    else:
        assert len(ranged) == BIG // (8 * MiB)
        assert ranged[0]["range"].startswith("bytes=")


def test_credentials_object_never_shows_the_secret() -> None:
    creds = Credentials("user", "hunter2-secret", "token-secret", "somewhere")
    assert "hunter2-secret" not in repr(creds) and "token-secret" not in repr(creds)

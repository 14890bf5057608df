"""Referrers on a registry: the OCI 1.1 referrers API, else the tag schema, and cosign's tag.

A registry with the API answers ``GET /v2/<name>/referrers/<digest>`` with an image index and
a pushed manifest with ``subject`` with an ``OCI-Subject`` header; one without it (Distribution
2.8) answers 404, and the client keeps the list itself in an index tagged ``sha256-<hex>``.
Manifests and small blobs are read with a size cap and checked against their digests.
"""

from __future__ import annotations

from ocillm.errors import DigestMismatch, RegistryError
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import is_digest, sha256_digest
from ocillm.oci.models import Descriptor, Index, Manifest
from ocillm.progress import silent
from ocillm.registry.client import RegistryClient
from ocillm.registry.options import MiB
from ocillm.registry.progress import Progress
from ocillm.registry.upload import UploadStats, send_blob
from ocillm.store import Store
from ocillm.trust.artifacts import fallback_tag, index_bytes, referrer_descriptor

MAX_SMALL_BLOB = 4 * MiB
API = "referrers API"
TAG_SCHEMA = "tag schema"


def referrers_api(client: RegistryClient, digest: str) -> list[Descriptor] | None:
    """The API's list for ``digest``, or None when the registry has no referrers API."""
    path = f"/v2/{client.ref.repository}/referrers/{digest}"
    response = client.request("GET", path, headers={"Accept": mt.OCI_INDEX})
    if response.status_code in (400, 404, 405):
        response.close()
        return None
    if response.status_code != 200:
        raise client.fail(response, "GET referrers")
    try:
        return Index.model_validate_json(response.content).manifests
    except ValueError:
        return None  # a 200 that is not an index: some other route answered, not the API


def fetch_manifest(client: RegistryClient, target: str) -> tuple[bytes, Manifest] | None:
    """A manifest by tag or digest (None when absent), its digest checked when pinned."""
    try:
        raw, _media, _header = client.fetch_manifest(target)
    except RegistryError as e:
        if e.status == 404:
            return None
        raise
    actual = sha256_digest(raw)
    if is_digest(target) and actual != target:
        raise DigestMismatch(target, actual, what=f"manifest in {client.ref.name}")
    try:
        return raw, Manifest.from_bytes(raw)
    except ValueError:
        return None  # an index or something else: not a referrer manifest


def fallback_index(client: RegistryClient, digest: str) -> list[Descriptor]:
    try:
        raw, _media, _header = client.fetch_manifest(fallback_tag(digest))
    except RegistryError as e:
        if e.status == 404:
            return []
        raise
    try:
        return Index.model_validate_json(raw).manifests
    except ValueError:
        return []


def list_referrers(client: RegistryClient, digest: str) -> tuple[list[Descriptor], str]:
    """(descriptors, which mechanism answered) for ``digest``."""
    listed = referrers_api(client, digest)
    if listed is not None:
        return listed, API
    return fallback_index(client, digest), TAG_SCHEMA


def fetch_small_blob(client: RegistryClient, desc: Descriptor) -> bytes:
    """A payload-sized blob as the registry serves it (the caller compares its digest)."""
    if desc.size > MAX_SMALL_BLOB:
        raise RegistryError(client.registry, str(client.ref), None, f"blob {desc.digest} too large")
    response = client.get_blob_stream(desc.digest)
    if response.status_code != 200:
        raise client.fail(response, f"GET blob {desc.digest}")
    data = bytearray()
    for chunk in response.iter_content(64 * 1024):
        data += chunk
        if len(data) > MAX_SMALL_BLOB:
            response.close()
            raise RegistryError(
                client.registry, str(client.ref), 200, f"blob {desc.digest} too large"
            )
    return bytes(data)


def push_blobs(client: RegistryClient, store: Store, blobs: list[Descriptor]) -> None:
    """Upload blobs already in ``store`` that the registry lacks."""
    progress = Progress(silent)
    stats = UploadStats()
    seen: set[str] = set()
    for blob in blobs:
        if blob.digest in seen:
            continue
        seen.add(blob.digest)
        bar = progress.blob("pushing", blob.digest, blob.size)
        send_blob(client, store, blob, client.options, bar, stats, [])


def put_manifest(client: RegistryClient, target: str, raw: bytes, media: str) -> bool:
    """PUT a manifest; True when the registry says it indexed its subject (``OCI-Subject``)."""
    response = client.request(
        "PUT", client.manifest_path(target), headers={"Content-Type": media}, data=raw
    )
    if response.status_code not in (200, 201, 202):
        raise client.fail(response, "PUT manifest")
    response.close()
    return bool(response.headers.get("OCI-Subject"))


def push_referrer(client: RegistryClient, store: Store, manifest: Manifest) -> tuple[str, str]:
    """Push a manifest with ``subject`` and its blobs; keep the tag-schema index up to date
    where the registry does not index it. Returns (manifest digest, mechanism)."""
    assert manifest.subject is not None
    push_blobs(client, store, [manifest.config, *manifest.layers])
    raw = manifest.to_bytes()
    digest = sha256_digest(raw)
    if put_manifest(client, digest, raw, manifest.media_type or mt.OCI_MANIFEST):
        return digest, API
    subject = manifest.subject.digest
    # The tag schema: read, add, write back (the spec's own race: two writers may collide).
    entries = [e for e in fallback_index(client, subject) if e.digest != digest]
    entries.append(referrer_descriptor(manifest, raw))
    put_manifest(client, fallback_tag(subject), index_bytes(entries), mt.OCI_INDEX)
    return digest, TAG_SCHEMA

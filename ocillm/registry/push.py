"""``push``: a local image to a registry, as built or converted to another format.

The token is asked for ``pull,push`` on the target repository (and ``pull`` on any repository
of the same registry a blob can be mounted from) before the first HEAD. Blobs the registry has
are skipped, blobs another repository there holds are mounted, the rest are streamed
``concurrency`` at a time; the manifest goes last, byte for byte as stored, so its digest is
the one ``ocillm list`` shows. ``fmt`` converts first (the manifest digest then changes).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ocillm.errors import NotFound, RegistryError, StoreError
from ocillm.image import detect_format, read_content, write_manifest
from ocillm.image.formats import parse_config
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import sha256_digest
from ocillm.oci.models import Descriptor, Index, Manifest
from ocillm.oci.reference import Reference
from ocillm.progress import Reporter, silent
from ocillm.registry.auth import repository_scope
from ocillm.registry.client import RegistryClient
from ocillm.registry.options import TransferOptions
from ocillm.registry.progress import Progress
from ocillm.registry.upload import UploadStats, send_blob
from ocillm.store import Store

MAX_MOUNT_SOURCES = 3


@dataclass
class PushResult:
    reference: Reference
    digest: str
    media_type: str
    format: str
    converted_from: str | None  # the local manifest digest, when --format converted it
    stats: UploadStats


def push(
    ref: Reference,
    store: Store,
    *,
    target: Reference | None = None,
    fmt: str | None = None,
    options: TransferOptions | None = None,
    report: Reporter = silent,
) -> PushResult:
    """Push the local image ``ref`` to ``target`` (default: the registry ``ref`` names)."""
    with store.writing():  # a concurrent prune must not take a converted config mid-push
        return _push(ref, store, target or ref, fmt, options or TransferOptions(), report)


def _push(
    ref: Reference,
    store: Store,
    dest: Reference,
    fmt: str | None,
    opts: TransferOptions,
    report: Reporter,
) -> PushResult:
    progress = Progress(report)
    desc = store.resolve(ref)
    manifest = store.manifest(desc)
    raw = store.blobs.read_bytes(desc.digest)
    media = desc.media_type or manifest.media_type or mt.OCI_MANIFEST
    current = detect_format(manifest)
    converted_from: str | None = None
    if fmt is not None and fmt != current:
        config = parse_config(store.blobs.read_bytes(manifest.config.digest))
        manifest, config_bytes = write_manifest(read_content(manifest, config), fmt)
        store.blobs.put_bytes(config_bytes)
        converted = store.put_manifest(manifest)
        converted_from, raw, media = desc.digest, manifest.to_bytes(), converted.media_type
        progress.event(
            f"converted {current} to {fmt}: manifest {converted.digest} (was {desc.digest})"
        )
        current = fmt
    # An index (a modelcar's) goes with every entry: their blobs, then each manifest by digest.
    children: list[tuple[str, bytes, str]] = []
    manifests = [manifest]
    if media in mt.INDEX_TYPES:
        manifests = []
        for entry in Index.model_validate_json(raw).manifests:
            child = store.blobs.read_bytes(entry.digest)
            children.append((entry.digest, child, entry.media_type))
            manifests.append(Manifest.from_bytes(child))
    blobs: dict[str, Descriptor] = {}
    for blob in (b for m in manifests for b in (m.config, *m.layers)):
        if not store.blobs.has(blob.digest):
            raise NotFound(f"{store.display(ref)}: blob {blob.digest} is missing from the store")
        blobs.setdefault(blob.digest, blob)
    sources = _mount_sources(store, dest, set(blobs))
    client = RegistryClient(dest, opts, actions="pull,push")
    extra = sorted({repo for repos in sources.values() for repo in repos})
    client.set_scopes(
        repository_scope(dest.repository, "pull,push"),
        *(repository_scope(repo, "pull") for repo in extra),
    )
    client.authorize()
    stats = UploadStats()

    def one(blob: Descriptor) -> None:
        send_blob(
            client, store, blob, opts, progress.blob("pushing", blob.digest, blob.size), stats,
            sources.get(blob.digest, []),
        )  # fmt: skip

    workers = max(1, min(opts.concurrency, len(blobs)))
    with ThreadPoolExecutor(workers, thread_name_prefix="ocillm-push") as pool:
        for future in [pool.submit(one, b) for b in blobs.values()]:
            future.result()
    for child_digest, child, child_media in children:
        client.put_manifest(child_digest, child, child_media)
    progress.event("pushing manifest")
    digest = sha256_digest(raw)
    returned = client.put_manifest(dest.target, raw, media)
    if returned and returned != digest:
        raise RegistryError(
            client.registry, str(dest), None, f"registry stored the manifest as {returned}"
        )
    progress.event("success")
    return PushResult(dest, digest, media, current, converted_from, stats)


def _mount_sources(store: Store, dest: Reference, digests: set[str]) -> dict[str, list[str]]:
    """Other repositories of ``dest``'s registry that local images say hold these blobs."""
    found: dict[str, list[str]] = {}
    for record in store.images():
        other = record.reference
        if other.registry != dest.registry or other.repository == dest.repository:
            continue
        try:
            manifest: Manifest = store.manifest(record.descriptor)
        except (NotFound, StoreError):
            continue
        for blob in (manifest.config, *manifest.layers):
            repos = found.setdefault(blob.digest, [])
            wanted = blob.digest in digests and other.repository not in repos
            if wanted and len(repos) < MAX_MOUNT_SOURCES:
                repos.append(other.repository)
    return {d: r for d, r in found.items() if r}

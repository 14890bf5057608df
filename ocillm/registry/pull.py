"""``pull``: a registry image into the local store, every byte verified before it is visible.

The manifest is fetched with an Accept header naming every manifest type ocillm reads, checked
against the digest it was asked for (or the registry's ``Docker-Content-Digest``), and stored
byte for byte so its digest survives. The config comes first: an image that is not a model
(no GGUF layer in any format ocillm reads) is refused before gigabytes move. Layers then come in
``concurrency`` at a time, large ones as parallel ranges, each resumable (see ``download.py``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from ocillm.errors import DigestMismatch, RegistryError
from ocillm.image import UnsupportedImage, detect_format, read_content
from ocillm.image.formats import parse_config
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import is_digest, sha256_digest
from ocillm.oci.models import Descriptor, Manifest
from ocillm.oci.reference import Reference
from ocillm.progress import Reporter, silent
from ocillm.registry.client import RegistryClient
from ocillm.registry.download import DownloadStats
from ocillm.registry.mirrors import Sources
from ocillm.registry.options import TransferOptions
from ocillm.registry.progress import Progress
from ocillm.store import Store


@dataclass
class PullResult:
    reference: Reference
    digest: str
    media_type: str
    format: str
    size: int
    stats: DownloadStats


def pull(
    ref: Reference,
    store: Store,
    *,
    options: TransferOptions | None = None,
    report: Reporter = silent,
    check: Callable[[RegistryClient, str], None] | None = None,
) -> PullResult:
    """Pull ``ref`` (tag or digest) into ``store`` and tag it there under the same name.

    ``check(client, digest)`` runs once the manifest digest is known and before any blob moves
    (the trust policy): raising there refuses the image."""
    opts = options or TransferOptions()
    progress = Progress(report)
    progress.event("pulling manifest")
    sources = Sources(ref, opts)  # the registry's mirrors, then the registry
    client, (raw, media) = sources.first(lambda c: _manifest(c, ref, ref.target))
    if media in mt.INDEX_TYPES:
        raw, media = _manifest(client, ref, _pick(client, raw))
    try:
        manifest = Manifest.from_bytes(raw)
    except ValueError:
        raise RegistryError(client.registry, str(ref), 200, "not an image manifest") from None
    digest = sha256_digest(raw)
    if check is not None:
        check(client, digest)
    stats = DownloadStats()
    with store.writing():
        config_progress = progress.blob("pulling", manifest.config.digest, manifest.config.size)
        sources.fetch_blob(store, manifest.config, config_progress, stats)
        config = parse_config(store.blobs.read_bytes(manifest.config.digest))
        try:
            read_content(manifest, config)  # refuse what is not a model image before the layers
        except UnsupportedImage as e:
            raise UnsupportedImage(f"{ref}: {e}") from None
        _fetch_layers(sources, store, manifest, opts, progress, stats)
        progress.event("verifying sha256 digest")
        progress.event("writing manifest")
        store.blobs.put_bytes(raw)
        desc = Descriptor(
            media_type=media,
            digest=digest,
            size=len(raw),
            artifact_type=manifest.artifact_type,
        )
        store.tag(ref, desc)
    progress.event("success")
    size = manifest.config.size + sum(layer.size for layer in manifest.layers)
    return PullResult(ref, digest, media, detect_format(manifest), size, stats)


def _manifest(client: RegistryClient, ref: Reference, target: str) -> tuple[bytes, str]:
    raw, content_type, header_digest = client.fetch_manifest(target)
    actual = sha256_digest(raw)
    if is_digest(target) and actual != target:
        raise DigestMismatch(target, actual, what=f"manifest of {ref.name}")
    if header_digest and header_digest.startswith("sha256:") and header_digest != actual:
        raise DigestMismatch(header_digest, actual, what=f"manifest of {ref}")
    try:
        declared = json.loads(raw).get("mediaType")
    except (ValueError, AttributeError):
        raise RegistryError(client.registry, str(ref), 200, "manifest is not JSON") from None
    media = declared if isinstance(declared, str) and declared else content_type
    if media not in (*mt.MANIFEST_TYPES, *mt.INDEX_TYPES):
        media = mt.OCI_MANIFEST if media in ("", "application/json") else media
    return raw, media


def _pick(client: RegistryClient, raw: bytes) -> str:
    """The ModelPack artifact of an index (a modelcar's index links it with runnable images),
    else its first image manifest (model images carry no platform variants)."""
    entries = json.loads(raw).get("manifests") or []
    for entry in entries:
        if entry.get("artifactType") == mt.MODELPACK_ARTIFACT and is_digest(
            str(entry.get("digest"))
        ):
            return str(entry["digest"])
    for entry in entries:
        if entry.get("mediaType") in mt.MANIFEST_TYPES and is_digest(str(entry.get("digest"))):
            return str(entry["digest"])
    raise RegistryError(client.registry, str(client.ref), 200, "the index lists no image manifest")


def _fetch_layers(
    sources: Sources,
    store: Store,
    manifest: Manifest,
    opts: TransferOptions,
    progress: Progress,
    stats: DownloadStats,
) -> None:
    unique: dict[str, Descriptor] = {}
    for layer in manifest.layers:
        unique.setdefault(layer.digest, layer)
    stop = threading.Event()

    def one(layer: Descriptor) -> None:
        if stop.is_set():
            return
        sources.fetch_blob(store, layer, progress.blob("pulling", layer.digest, layer.size), stats)

    workers = max(1, min(opts.concurrency, len(unique)))
    with ThreadPoolExecutor(workers, thread_name_prefix="ocillm-pull") as pool:
        futures = [pool.submit(one, layer) for layer in unique.values()]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                stop.set()
                for other in futures:
                    other.cancel()
                raise future.exception()  # type: ignore[misc]

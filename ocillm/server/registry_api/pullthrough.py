"""Mirror mode (``serve --mirror-of REGISTRY``): what the store lacks comes from the upstream.

A manifest asked for by tag is looked up upstream (one small request; if the upstream cannot be
reached the stored tag answers), kept in the store byte for byte, and tagged once every blob it
lists is present. A blob the store lacks is downloaded with the pull code (streamed, resumable,
verified before it is visible, the daemon's credentials for the upstream); concurrent requests
for one blob wait on the same download. A warm pull costs no upstream blob request.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

from ocillm.errors import DigestMismatch, RegistryError
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import is_digest, sha256_digest
from ocillm.oci.models import Descriptor, Manifest
from ocillm.oci.reference import Reference
from ocillm.progress import silent
from ocillm.registry.client import RegistryClient
from ocillm.registry.download import DownloadStats, fetch_blob
from ocillm.registry.mirrors import Mirror
from ocillm.registry.options import TransferOptions
from ocillm.registry.progress import Progress
from ocillm.server.registry_api.view import StoredManifest, media_type_of
from ocillm.server.registry_api.wire import RegistryApiError
from ocillm.store import Store

log = logging.getLogger("ocillm.server.registry")


def upstream_error(e: RegistryError | DigestMismatch) -> RegistryApiError:
    """The upstream's failure as this registry's answer: 404 stays 404, the rest is 502."""
    status = getattr(e, "status", None)
    if status == 404:
        return RegistryApiError(404, "MANIFEST_UNKNOWN", f"upstream: {e}")
    return RegistryApiError(502, "UNAVAILABLE", f"upstream: {e}")


class PullThrough:
    def __init__(self, upstream: str, store: Store, options: TransferOptions) -> None:
        self.mirror = Mirror.parse(upstream)
        self.store = store
        self.options = options
        self.stats = DownloadStats()
        self._clients: dict[str, RegistryClient] = {}
        self._inflight: dict[str, Future[None]] = {}
        self._pending: dict[str, tuple[Reference, Manifest, Descriptor]] = {}
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return self.mirror.host

    def covers(self, ref: Reference) -> bool:
        return ref.registry == self.mirror.host

    def _client(self, ref: Reference) -> RegistryClient:
        with self._lock:
            client = self._clients.get(ref.repository)
            if client is None:
                from dataclasses import replace

                opts = replace(self.options, plain_http=self.mirror.plain_http)
                client = RegistryClient(Reference(ref.registry, ref.repository), opts)
                self._clients[ref.repository] = client
            return client

    # -- manifests ------------------------------------------------------------------------------

    def manifest(self, ref: Reference, target: str) -> StoredManifest:
        """``target`` of ``ref`` from the upstream, stored; raises RegistryApiError."""
        client = self._client(ref)
        try:
            data, content_type, header_digest = client.fetch_manifest(target)
        except RegistryError as e:
            raise upstream_error(e) from None
        digest = sha256_digest(data)
        if (is_digest(target) and digest != target) or (
            header_digest and header_digest.startswith("sha256:") and header_digest != digest
        ):
            raise RegistryApiError(
                502, "UNAVAILABLE", f"upstream {self.host}: {ref.name}:{target}: digest mismatch"
            )
        media = media_type_of(data, content_type or mt.OCI_MANIFEST)
        with self.store.writing():
            self.store.blobs.put_bytes(data)
        if media in mt.MANIFEST_TYPES and not is_digest(target):
            try:
                manifest = Manifest.from_bytes(data)
            except ValueError:
                return StoredManifest(data, media, digest)
            desc = Descriptor(
                media_type=media,
                digest=digest,
                size=len(data),
                artifact_type=manifest.artifact_type,
            )
            with self._lock:
                for blob in (manifest.config, *manifest.layers):
                    self._sizes[blob.digest] = blob.size
                self._pending[digest] = (ref.with_tag(target), manifest, desc)
            self._tag_complete()
        return StoredManifest(data, media, digest)

    def _tag_complete(self) -> None:
        """Tag every fetched manifest whose blobs are all in the store now."""
        with self._lock:
            pending = list(self._pending.items())
        for digest, (ref, manifest, desc) in pending:
            if all(self.store.blobs.has(b.digest) for b in (manifest.config, *manifest.layers)):
                with self._lock:
                    self._pending.pop(digest, None)
                self.store.tag(ref, desc)
                log.info("cached %s (%s) from %s", ref, digest, self.host)

    # -- blobs ----------------------------------------------------------------------------------

    def blob(self, ref: Reference, digest: str) -> None:
        """Make ``digest`` present in the store, sharing one download among concurrent callers."""
        if self.store.blobs.has(digest):
            return
        with self._lock:
            future = self._inflight.get(digest)
            owner = future is None
            if future is None:
                future = self._inflight[digest] = Future()
        if not owner:
            future.result()
            return
        try:
            self._download(ref, digest)
            future.set_result(None)
        except BaseException as e:
            future.set_exception(e)
            raise
        finally:
            with self._lock:
                self._inflight.pop(digest, None)
        self._tag_complete()

    def _download(self, ref: Reference, digest: str) -> None:
        client = self._client(ref)
        with self._lock:
            size = self._sizes.get(digest)
        try:
            if size is None:
                size = self._size(client, digest)
            desc = Descriptor(media_type="application/octet-stream", digest=digest, size=size)
            progress = Progress(silent).blob("pulling", digest, size)
            with self.store.writing():
                fetch_blob(client, self.store, desc, client.options, progress, self.stats)
        except (RegistryError, DigestMismatch) as e:
            if getattr(e, "status", None) == 404:
                raise RegistryApiError(
                    404, "BLOB_UNKNOWN", f"blob unknown to registry: {digest}"
                ) from None
            raise upstream_error(e) from None
        log.info("fetched %s for %s from %s", digest, ref.name, self.host)

    def _size(self, client: RegistryClient, digest: str) -> int:
        response = client.request("HEAD", client.blob_path(digest))
        response.close()
        length = response.headers.get("Content-Length", "")
        if response.status_code != 200 or not length.isdigit():
            raise client.fail(response, f"HEAD blob {digest}")
        return int(length)

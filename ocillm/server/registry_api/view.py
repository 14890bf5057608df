"""The read side over the store: manifests, blobs, tags, the catalog and referrers.

Everything here is synchronous file work on the store (the routes run it in a thread). The store
is one content-addressed pool, so a blob or a manifest digest is found whatever repository the
URL names; tags belong to their repository.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from ocillm.errors import NotFound
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import is_digest, sha256_digest
from ocillm.oci.models import Descriptor
from ocillm.oci.reference import Reference
from ocillm.server.registry_api.names import to_name
from ocillm.server.registry_api.wire import MANIFEST_LIMIT, RegistryApiError
from ocillm.store import Store


@dataclass(frozen=True)
class StoredManifest:
    data: bytes
    media_type: str
    digest: str


def manifest_unknown(ref: Reference, target: str) -> RegistryApiError:
    return RegistryApiError(404, "MANIFEST_UNKNOWN", f"manifest unknown: {ref.name}:{target}")


def blob_unknown(digest: str) -> RegistryApiError:
    return RegistryApiError(404, "BLOB_UNKNOWN", f"blob unknown to registry: {digest}")


def check_digest(value: str) -> str:
    if not is_digest(value):
        raise RegistryApiError(400, "DIGEST_INVALID", f"invalid digest {value!r}")
    return value


def media_type_of(data: bytes, fallback: str = mt.OCI_MANIFEST) -> str:
    try:
        declared = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        return fallback
    return declared if isinstance(declared, str) and declared else fallback


class StoreView:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._referrers: tuple[int, dict[str, list[Descriptor]]] | None = None
        self._lock = threading.Lock()

    # -- manifests ------------------------------------------------------------------------------

    def tagged(self, ref: Reference, tag: str) -> Descriptor | None:
        try:
            return self.store.resolve(ref.with_tag(tag))
        except NotFound:
            return None

    def manifest(self, ref: Reference, target: str) -> StoredManifest:
        """The manifest ``target`` (a tag of ``ref`` or any stored manifest digest) names."""
        if is_digest(target):
            if not self.store.blobs.has(target) or self.store.blobs.size(target) > MANIFEST_LIMIT:
                raise manifest_unknown(ref, target)
            data = self.store.blobs.read_bytes(target)
            media = media_type_of(data, "")
            if (
                media not in (*mt.MANIFEST_TYPES, *mt.INDEX_TYPES)
                and b'"schemaVersion"' not in data
            ):
                raise manifest_unknown(ref, target)  # a blob, not a manifest
            return StoredManifest(data, media or mt.OCI_MANIFEST, target)
        desc = self.tagged(ref, target)
        if desc is None:
            raise manifest_unknown(ref, target)
        data = self.store.blobs.read_bytes(desc.digest)
        return StoredManifest(data, desc.media_type or media_type_of(data), desc.digest)

    # -- blobs ----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path | None:
        path = self.store.blobs.path(check_digest(digest))
        return path if path.is_file() else None

    # -- listings -------------------------------------------------------------------------------

    def tags(self, ref: Reference) -> list[str]:
        return sorted(
            {
                r.reference.tag
                for r in self.store.images()
                if r.reference.name == ref.name and r.reference.tag
            }
        )

    def repositories(self) -> list[str]:
        return sorted({to_name(r.reference) for r in self.store.images()})

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Stored manifests whose ``subject`` is ``digest`` (cached until index.json changes)."""
        check_digest(digest)
        found = self._referrer_map().get(digest, [])
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def _referrer_map(self) -> dict[str, list[Descriptor]]:
        index_path = self.store.root / "index.json"
        try:
            stamp = os.stat(index_path).st_mtime_ns
        except FileNotFoundError:
            return {}
        with self._lock:
            if self._referrers is not None and self._referrers[0] == stamp:
                return self._referrers[1]
        found: dict[str, list[Descriptor]] = {}
        seen: set[str] = set()
        for entry in self.store.read_index().manifests:
            if entry.digest in seen or not self.store.blobs.has(entry.digest):
                continue
            seen.add(entry.digest)
            try:
                data = self.store.blobs.read_bytes(entry.digest)
                doc = json.loads(data)
            except (ValueError, NotFound):
                continue
            subject = doc.get("subject") if isinstance(doc, dict) else None
            if not isinstance(subject, dict) or not is_digest(str(subject.get("digest"))):
                continue
            config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
            artifact = doc.get("artifactType") or config.get("mediaType")
            annotations = (
                doc.get("annotations") if isinstance(doc.get("annotations"), dict) else None
            )
            found.setdefault(str(subject["digest"]), []).append(
                Descriptor(
                    media_type=str(doc.get("mediaType") or mt.OCI_MANIFEST),
                    digest=sha256_digest(data),
                    size=len(data),
                    artifact_type=str(artifact) if artifact else None,
                    annotations=annotations,
                )
            )
        with self._lock:
            self._referrers = (stamp, found)
        return found


def page(items: list[str], n: int | None, last: str | None) -> tuple[list[str], bool]:
    """``n``/``last`` paging as the spec defines it: entries after ``last``, at most ``n``;
    the flag says whether more follow (a ``Link`` header then points there)."""
    rest = [i for i in items if last is None or i > last]
    if n is None:
        return rest, False
    return rest[:n], len(rest) > n

"""Referrers in the local store: untagged ``index.json`` entries that say what they are about.

Each is annotated ``io.ocillm.subject`` with the manifest digest it refers to (a cosign ``.sig``
manifest carries no ``subject`` of its own), so prune keeps it, ``save`` finds it, and
``verify --local`` needs no network.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocillm.errors import OcillmError, StoreError
from ocillm.oci import mediatypes as mt
from ocillm.oci.models import Descriptor, Manifest
from ocillm.store import Store
from ocillm.trust.artifacts import ANN_SUBJECT, artifact_type_of


@dataclass(frozen=True)
class LocalReferrer:
    descriptor: Descriptor  # the index entry
    manifest: Manifest


def keep(store: Store, raw: bytes, subject: str) -> Descriptor:
    """Store referrer manifest bytes (its blobs already in ``store``) as about ``subject``."""
    manifest = Manifest.from_bytes(raw)
    for blob in (manifest.config, *manifest.layers):
        if not store.blobs.has(blob.digest):
            raise StoreError(f"referrer of {subject}: blob {blob.digest} is not in the store")
    digest = store.blobs.put_bytes(raw)
    entry = Descriptor(
        media_type=manifest.media_type or mt.OCI_MANIFEST,
        digest=digest,
        size=len(raw),
        artifact_type=artifact_type_of(manifest),
        annotations={ANN_SUBJECT: subject},
    )
    store.add_untagged(entry)
    return entry


def referrers(store: Store, subject: str) -> list[LocalReferrer]:
    """Every kept manifest about ``subject`` (by annotation or by its own ``subject``)."""
    found = []
    for entry in store.read_index().manifests:
        if entry.annotation(mt.ANN_REF_NAME) or not store.blobs.has(entry.digest):
            continue
        try:
            manifest = Manifest.from_bytes(store.blobs.read_bytes(entry.digest))
        except (ValueError, OcillmError):
            continue  # altered, or an entry another tool wrote; not a referrer ocillm reads
        about = entry.annotation(ANN_SUBJECT) or (manifest.subject and manifest.subject.digest)
        if about == subject:
            found.append(LocalReferrer(entry, manifest))
    return found

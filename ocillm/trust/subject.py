"""Which manifest a command is about: resolved on the registry or in the store, never by blobs."""

from __future__ import annotations

from ocillm.errors import DigestMismatch, NotFound
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import sha256_digest
from ocillm.oci.models import Descriptor
from ocillm.oci.reference import Reference
from ocillm.registry.client import RegistryClient
from ocillm.store import Store


def remote_subject(client: RegistryClient, ref: Reference) -> Descriptor:
    """The manifest ``ref`` names on the registry (a tag is resolved to its digest once)."""
    raw, media, _header = client.fetch_manifest(ref.target)
    digest = sha256_digest(raw)
    if ref.digest and digest != ref.digest:
        raise DigestMismatch(ref.digest, digest, what=f"manifest of {ref.name}")
    return Descriptor(media_type=media or mt.OCI_MANIFEST, digest=digest, size=len(raw))


def local_subject(store: Store, ref: Reference) -> Descriptor:
    desc = store.resolve(ref)
    if not store.blobs.has(desc.digest):
        raise NotFound(f"{store.display(ref)}: manifest {desc.digest} is not in the store")
    return Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size)

"""``discover``: what refers to an image, on the registry or in the store."""

from __future__ import annotations

from dataclasses import dataclass

from ocillm.registry.client import RegistryClient
from ocillm.store import Store
from ocillm.trust import local, remote
from ocillm.trust.artifacts import artifact_type_of, cosign_tag


@dataclass(frozen=True)
class Found:
    artifact_type: str
    digest: str
    size: int
    annotations: dict[str, str]
    source: str  # "referrers API", "tag schema", "cosign tag sha256-….sig", "store"


def discover_remote(client: RegistryClient, subject: str) -> list[Found]:
    listed, how = remote.list_referrers(client, subject)
    found = [
        Found(d.artifact_type or "", d.digest, d.size, dict(d.annotations or {}), how)
        for d in listed
    ]
    tag = cosign_tag(subject)
    sig = remote.fetch_manifest(client, tag)
    if sig is not None:
        raw, manifest = sig
        from ocillm.oci.digest import sha256_digest

        found.append(
            Found(artifact_type_of(manifest), sha256_digest(raw), len(raw), {}, f"cosign tag {tag}")
        )
    return found


def discover_local(store: Store, subject: str) -> list[Found]:
    return [
        Found(
            artifact_type_of(r.manifest),
            r.descriptor.digest,
            r.descriptor.size,
            dict(r.manifest.annotations or {}),
            "store",
        )
        for r in local.referrers(store, subject)
    ]

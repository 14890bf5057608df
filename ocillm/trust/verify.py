"""Deciding whether a manifest digest is signed by a trusted key, from the registry or the store.

A signature counts when its payload blob matches its descriptor's digest, the signature verifies
with one of the keys, and the payload names exactly this manifest digest. Nothing else is read:
the image's own blobs never are (their digests are in the signed manifest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from ocillm.oci.digest import sha256_digest
from ocillm.oci.models import Manifest
from ocillm.registry.client import RegistryClient
from ocillm.store import Store
from ocillm.trust import local, remote
from ocillm.trust.artifacts import SIGNATURE_ARTIFACT, cosign_tag, signatures_in
from ocillm.trust.errors import TrustError
from ocillm.trust.simplesigning import parse, signature_valid


@dataclass(frozen=True)
class Candidate:
    """One signature found: its payload as read, the digest it should have, where it was."""

    payload: bytes
    payload_digest: str
    signature: str
    origin: str  # "cosign tag sha256-….sig", "referrer sha256:…", "store"


@dataclass(frozen=True)
class Verified:
    digest: str
    key: Path
    docker_reference: str
    origin: str


@dataclass(frozen=True)
class TrustedKey:
    path: Path
    key: ec.EllipticCurvePublicKey


def decide(subject: str, digest: str, found: list[Candidate], keys: list[TrustedKey]) -> Verified:
    """The first candidate that verifies, else a TrustError naming why none did."""
    if not found:
        raise TrustError(subject, f"no signature for {digest}")
    reasons: dict[int, str] = {}  # rank -> reason: the most telling one is reported
    for c in found:
        if sha256_digest(c.payload) != c.payload_digest:
            reasons.setdefault(
                1, f"signature payload was altered (its digest is not {c.payload_digest})"
            )
            continue
        good = [k for k in keys if signature_valid(k.key, c.payload, c.signature)]
        if not good:
            names = ", ".join(str(k.path) for k in keys)
            reasons.setdefault(
                0, f"no signature verifies with {names} (wrong key, or an altered signature)"
            )
            continue
        claim = parse(c.payload)
        if claim is None:
            reasons.setdefault(2, "signed payload is not a cosign image signature")
            continue
        if claim.digest != digest:
            reasons.setdefault(3, f"signed payload is for {claim.digest}, not {digest}")
            continue
        return Verified(digest, good[0].path, claim.docker_reference, c.origin)
    raise TrustError(subject, reasons[max(reasons)])


def load_keys(paths: list[Path]) -> list[TrustedKey]:
    from ocillm.trust.keys import load_public

    return [TrustedKey(p, load_public(p)) for p in paths]


def remote_candidates(client: RegistryClient, digest: str) -> list[Candidate]:
    """Signatures under cosign's tag and among the OCI referrers of ``digest``."""
    manifests: list[tuple[str, Manifest]] = []
    tag = cosign_tag(digest)
    found = remote.fetch_manifest(client, tag)
    if found is not None:
        manifests.append((f"cosign tag {tag}", found[1]))
    listed, _how = remote.list_referrers(client, digest)
    for desc in listed:
        if desc.artifact_type == SIGNATURE_ARTIFACT:
            got = remote.fetch_manifest(client, desc.digest)
            if got is not None:
                manifests.append((f"referrer {desc.digest}", got[1]))
    out = []
    for origin, manifest in manifests:
        for layer, signature in signatures_in(manifest):
            data = remote.fetch_small_blob(client, layer)
            out.append(Candidate(data, layer.digest, signature, origin))
    return out


def local_candidates(store: Store, digest: str) -> list[Candidate]:
    out = []
    for ref in local.referrers(store, digest):
        for layer, signature in signatures_in(ref.manifest):
            if not store.blobs.has(layer.digest):
                continue
            # Re-read and re-hash: a payload is a few hundred bytes, and the file may be altered.
            with store.blobs.open(layer.digest) as f:
                data = f.read(remote.MAX_SMALL_BLOB)
            out.append(Candidate(data, layer.digest, signature, f"store {ref.descriptor.digest}"))
    return out

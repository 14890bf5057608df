"""``sign`` and ``attach``: make the signature or artifact manifest, keep it, push it.

A signature goes to cosign's ``sha256-<hex>.sig`` tag (merged with the signatures already there,
as cosign appends) and, where the registry has the referrers API, also as an OCI 1.1 referrer.
An attached file is a referrer (API, else the tag schema). Either is kept in the local store too
when the image is there, so ``verify --local``, ``save`` and ``serve``'s policy check see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from ocillm.oci import mediatypes as mt
from ocillm.oci.models import Descriptor, Manifest
from ocillm.oci.reference import Reference
from ocillm.registry.client import RegistryClient
from ocillm.registry.options import MiB, TransferOptions
from ocillm.store import Store
from ocillm.trust import local, remote
from ocillm.trust.artifacts import (
    EMPTY_CONFIG,
    SIGNATURE_ARTIFACT,
    cosign_tag,
    referrer_manifest,
    signature_layer,
    signatures_in,
    tag_scheme_manifest,
)
from ocillm.trust.simplesigning import payload, sign
from ocillm.trust.subject import local_subject, remote_subject


@dataclass
class Published:
    subject: Descriptor
    manifest: str  # digest of the referrer manifest (the signature's OCI form, or the artifact)
    stored: list[str] = field(default_factory=list)  # where it went: "store", "cosign tag …"


def _subject(
    ref: Reference, store: Store, client: RegistryClient | None
) -> tuple[Descriptor, bool]:
    """(the image manifest, whether the store holds it)."""
    if client is None:
        return local_subject(store, ref), True
    desc = remote_subject(client, ref)
    return desc, store.blobs.has(desc.digest)


def _client(
    ref: Reference, options: TransferOptions | None, local_only: bool
) -> RegistryClient | None:
    if local_only:
        return None
    client = RegistryClient(ref, options or TransferOptions(), actions="pull,push")
    client.authorize()
    return client


def sign_image(
    ref: Reference,
    store: Store,
    key: ec.EllipticCurvePrivateKey,
    *,
    options: TransferOptions | None = None,
    local_only: bool = False,
) -> Published:
    client = _client(ref, options, local_only)
    with store.writing():
        subject, in_store = _subject(ref, store, client)
        body = payload(ref.name, subject.digest)
        layer = signature_layer(body, sign(key, body))
        store.blobs.put_bytes(body)
        store.blobs.put_bytes(EMPTY_CONFIG)
        oci_form = referrer_manifest(SIGNATURE_ARTIFACT, [layer], subject)
        raw = oci_form.to_bytes()
        result = Published(subject, store.blobs.put_bytes(raw))
        if in_store:
            local.keep(store, raw, subject.digest)
            result.stored.append("store")
        if client is not None:
            result.stored.append(_push_cosign_tag(client, store, subject.digest, layer))
            if remote.referrers_api(client, subject.digest) is not None:
                remote.push_referrer(client, store, oci_form)
                result.stored.append(remote.API)
    return result


def _push_cosign_tag(client: RegistryClient, store: Store, digest: str, layer: Descriptor) -> str:
    """Append ``layer`` to the signatures under cosign's tag (one layer per signature)."""
    tag = cosign_tag(digest)
    layers: list[Descriptor] = []
    existing = remote.fetch_manifest(client, tag)
    if existing is not None:
        # The payload is the same for every signer of one image: a layer per signature.
        layers = [d for d, _sig in signatures_in(existing[1]) if d != layer]
    layers.append(layer)
    manifest, config = tag_scheme_manifest(layers)
    store.blobs.put_bytes(config)
    remote.push_blobs(client, store, [manifest.config, layer])  # older layers are there already
    remote.put_manifest(client, tag, manifest.to_bytes(), mt.OCI_MANIFEST)
    return f"cosign tag {tag}"


def attach_files(
    ref: Reference,
    store: Store,
    artifact_type: str,
    files: list[Path],
    *,
    media_type: str = "application/octet-stream",
    annotations: dict[str, str] | None = None,
    options: TransferOptions | None = None,
    local_only: bool = False,
) -> Published:
    client = _client(ref, options, local_only)
    with store.writing():
        subject, in_store = _subject(ref, store, client)
        layers = []
        for path in files:
            digest, size = store.blobs.put_stream(_chunks(path))
            layers.append(
                Descriptor(
                    media_type=media_type,
                    digest=digest,
                    size=size,
                    annotations={mt.ANN_TITLE: path.name},
                )
            )
        store.blobs.put_bytes(EMPTY_CONFIG)
        manifest: Manifest = referrer_manifest(artifact_type, layers, subject, annotations)
        raw = manifest.to_bytes()
        result = Published(subject, store.blobs.put_bytes(raw))
        if in_store:
            local.keep(store, raw, subject.digest)
            result.stored.append("store")
        if client is not None:
            _digest, how = remote.push_referrer(client, store, manifest)
            result.stored.append(how)
    return result


def _chunks(path: Path) -> Iterator[bytes]:
    from ocillm.trust.errors import TrustError

    try:
        with open(path, "rb") as f:
            while chunk := f.read(MiB):
                yield chunk
    except OSError as e:
        raise TrustError(str(path), f"cannot read: {e.strerror or e}") from None

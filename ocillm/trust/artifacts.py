"""The manifests that carry signatures and attached files, and the tags that find them.

Two shapes hold a signature, both as cosign writes them:
- cosign's tag scheme: tag ``sha256-<hex>.sig`` in the image's repository, an OCI image manifest
  whose config is a minimal image config listing the payloads as ``rootfs.diff_ids`` and whose
  layers are the payloads (``application/vnd.dev.cosign.simplesigning.v1+json``), each with its
  signature in the annotation ``dev.cosignproject.cosign/signature``; more signatures, more layers;
- an OCI 1.1 referrer: ``artifactType application/vnd.dev.cosign.artifact.sig.v1+json``, the
  empty config, the same layer, and ``subject`` = the image.
An attached file (SBOM, model card) is a referrer with the user's artifact type, the empty
config, and one layer per file titled with its name. Registries without the referrers API list
referrers in an image index tagged ``sha256-<hex>`` (the distribution spec's tag schema).
"""

from __future__ import annotations

import json

from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import digest_hex, sha256_digest
from ocillm.oci.models import Descriptor, Manifest, canonical_json

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY_CONFIG = b"{}"
# index.json only: the manifest digest a kept referrer is about (a .sig manifest has no subject).
ANN_SUBJECT = "io.ocillm.subject"


def cosign_tag(digest: str) -> str:
    return f"sha256-{digest_hex(digest)}.sig"


def fallback_tag(digest: str) -> str:
    return f"sha256-{digest_hex(digest)}"


def signature_layer(payload: bytes, signature: str) -> Descriptor:
    return Descriptor(
        media_type=SIMPLESIGNING,
        digest=sha256_digest(payload),
        size=len(payload),
        annotations={ANN_SIGNATURE: signature},
    )


def empty_config() -> Descriptor:
    return Descriptor(media_type=mt.OCI_EMPTY, digest=mt.OCI_EMPTY_DIGEST, size=2)


def tag_scheme_manifest(layers: list[Descriptor]) -> tuple[Manifest, bytes]:
    """cosign's ``.sig`` manifest for ``layers`` and its config blob."""
    epoch = "0001-01-01T00:00:00Z"  # what go-containerregistry writes for an empty image
    config = {
        "architecture": "",
        "created": epoch,
        "history": [{"created": epoch} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "config": {},
    }
    config_bytes = canonical_json(config)
    manifest = Manifest(
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(
            media_type=OCI_IMAGE_CONFIG,
            digest=sha256_digest(config_bytes),
            size=len(config_bytes),
        ),
        layers=layers,
    )
    return manifest, config_bytes


def referrer_manifest(
    artifact_type: str,
    layers: list[Descriptor],
    subject: Descriptor,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """An OCI 1.1 artifact about ``subject`` (its config is the 2-byte empty blob)."""
    return Manifest(
        media_type=mt.OCI_MANIFEST,
        artifact_type=artifact_type,
        config=empty_config(),
        layers=layers,
        subject=Descriptor(media_type=subject.media_type, digest=subject.digest, size=subject.size),
        annotations=annotations or None,
    )


def signatures_in(manifest: Manifest) -> list[tuple[Descriptor, str]]:
    """(payload layer, base64 signature) of every simple-signing layer of ``manifest``."""
    found = []
    for layer in manifest.layers:
        signature = layer.annotation(ANN_SIGNATURE)
        if layer.media_type == SIMPLESIGNING and signature is not None:
            found.append((layer, signature))
    return found


def artifact_type_of(manifest: Manifest) -> str:
    """What a referrer is: its artifactType, else its config's media type (the spec's rule)."""
    return manifest.artifact_type or manifest.config.media_type


def referrer_descriptor(manifest: Manifest, raw: bytes) -> Descriptor:
    """The descriptor a referrers index lists for ``manifest``."""
    return Descriptor(
        media_type=manifest.media_type or mt.OCI_MANIFEST,
        digest=sha256_digest(raw),
        size=len(raw),
        artifact_type=artifact_type_of(manifest),
        annotations=manifest.annotations or None,
    )


def index_bytes(entries: list[Descriptor]) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [e.wire() for e in entries],
    }
    return json.dumps(body, separators=(",", ":")).encode()

"""cosign's "simple signing" payload: the JSON that is signed, and the signature over it.

The payload names the repository (``critical.identity.docker-reference``) and the manifest
digest (``critical.image.docker-manifest-digest``); cosign writes the fields in this order, with
``optional`` null when there are no annotations. The signature is ECDSA P-256 over the SHA-256
of the payload bytes, ASN.1 DER, base64 (standard alphabet) in the layer annotation
``dev.cosignproject.cosign/signature``. Only the manifest digest is signed, so signing and
verifying a 1 GiB image never reads its blobs.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ocillm.oci.digest import is_digest

SIGNATURE_TYPE = "cosign container image signature"


@dataclass(frozen=True)
class Claim:
    """What a payload says: this repository's manifest with this digest."""

    docker_reference: str
    digest: str
    optional: dict[str, Any] | None


def payload(docker_reference: str, digest: str, optional: dict[str, str] | None = None) -> bytes:
    body = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": optional or None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """The base64 DER signature cosign stores in the layer annotation."""
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def signature_valid(key: ec.EllipticCurvePublicKey, data: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def parse(data: bytes) -> Claim | None:
    """The claim of a payload, or None when it is not a cosign image signature payload."""
    try:
        body = json.loads(data)
        critical = body["critical"]
        digest = critical["image"]["docker-manifest-digest"]
        reference = critical["identity"]["docker-reference"]
        kind = critical["type"]
    except (ValueError, KeyError, TypeError):
        return None
    if kind != SIGNATURE_TYPE or not isinstance(digest, str) or not is_digest(digest):
        return None
    optional = body.get("optional")
    return Claim(str(reference), digest, optional if isinstance(optional, dict) else None)

"""ECDSA P-256 keys as PEM files: what ``cosign.pub`` is, and what ``cosign import-key-pair`` reads.

Private keys are PKCS#8 PEM, encrypted with a password when one is given. cosign's own
``cosign.key`` (scrypt + NaCl secretbox, "ENCRYPTED SIGSTORE PRIVATE KEY") is a format the
``cryptography`` package cannot open; it is recognised and named in the error instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ocillm.trust.errors import TrustError

COSIGN_OWN_FORMATS = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")


def generate(password: bytes | None) -> tuple[bytes, bytes]:
    """A new P-256 pair: (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return private, public_pem(key.public_key())


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_pair(prefix: Path, password: bytes | None, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (mode 0600) and ``PREFIX.pub``; refuse to replace them unless ``force``."""
    private_path = prefix.with_name(prefix.name + ".key")
    public_path = prefix.with_name(prefix.name + ".pub")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise TrustError(str(path), "already exists (use --force to replace it)")
    private, public = generate(password)
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        public_path.write_bytes(public)
    except OSError as e:
        raise TrustError(str(e.filename or prefix), f"cannot write: {e.strerror or e}") from None
    return private_path, public_path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TrustError(str(path), f"cannot read key: {e.strerror or e}") from None


def load_private(path: Path, password: bytes | None) -> ec.EllipticCurvePrivateKey:
    data = _read(path)
    if any(marker in data for marker in COSIGN_OWN_FORMATS):
        raise TrustError(
            str(path),
            "is cosign's own encrypted key format, which ocillm cannot read; sign with a PEM "
            "key from `ocillm key generate` (cosign import-key-pair takes it too)",
        )
    try:
        key = serialization.load_pem_private_key(data, password=password or None)
    except TypeError:
        reason = "is encrypted: pass its password with --key-password-stdin"
        if password:
            reason = "is not encrypted, but a password was given"
        raise TrustError(str(path), reason) from None
    except (ValueError, UnsupportedAlgorithm):
        reason = "wrong password" if password and b"ENCRYPTED" in data else "not a PEM private key"
        raise TrustError(str(path), reason) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise TrustError(str(path), "not an ECDSA P-256 key (cosign's key type)")
    return key


def load_public(path: Path) -> ec.EllipticCurvePublicKey:
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise TrustError(str(path), "not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise TrustError(str(path), "not an ECDSA P-256 public key (cosign's key type)")
    return key

"""``sign`` / ``verify`` / ``key generate`` against real Distribution registries (no auth, Basic,
token), and the stored signature checked against cosign's documented format with
``cryptography`` directly, independent of ocillm's code."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import BASIC_PASSWORD, BASIC_USERNAME, CLI
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_registry_transfer import error_lines
from trust_support import (
    get_blob,
    get_manifest,
    keypair,
    pushed_image,
    put_blob,
    put_manifest,
    repo_of,
)

COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIG = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.mark.parametrize("auth", ["none", "htpasswd", "token"])
def test_sign_then_verify(
    cli: CLI, registry_factory: Any, tiny_gguf: Path, tmp_path: Path, auth: str
) -> None:
    reg = registry_factory(auth, users={BASIC_USERNAME: BASIC_PASSWORD})
    env = {"OCILLM_REGISTRY_USERNAME": BASIC_USERNAME, "OCILLM_REGISTRY_PASSWORD": BASIC_PASSWORD}
    ref = f"{reg.host}/acme/bot:1"
    modelfile = tiny_gguf.parent / "Modelfile.trust"
    modelfile.write_text(f"FROM {tiny_gguf}\n")
    digest = cli("build", "-f", modelfile, "-t", ref, "-q", check=True).stdout.split()[-1]
    cli("push", ref, "-q", env=env, check=True)
    key, pub = keypair(cli, tmp_path)

    signed = cli("sign", ref, "--key", key, env=env)
    assert signed.returncode == 0, signed.stderr
    assert digest in signed.stdout and "cosign tag" in signed.stderr

    verified = cli("verify", ref, "--key", pub, env=env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == digest


def test_signature_is_in_cosigns_format(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/acme/bot:fmt"
    digest = pushed_image(cli, tiny_gguf, ref)
    key, pub = keypair(cli, tmp_path)
    cli("sign", ref, "--key", key, check=True)

    host, repo = repo_of(ref)
    response = get_manifest(host, repo, f"sha256-{digest.split(':')[1]}.sig")
    assert response.status_code == 200
    manifest = response.json()
    assert manifest["mediaType"] == OCI_MANIFEST
    [layer] = manifest["layers"]
    assert layer["mediaType"] == COSIGN_PAYLOAD
    payload = get_blob(host, repo, layer["digest"])
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == layer["digest"]
    body = json.loads(payload)
    assert body["critical"] == {
        "identity": {"docker-reference": f"{host}/{repo}"},
        "image": {"docker-manifest-digest": digest},
        "type": "cosign container image signature",
    }
    public = serialization.load_pem_public_key(pub.read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    signature = base64.b64decode(layer["annotations"][COSIGN_SIG])
    public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))  # raises if not cosign's scheme
    config = json.loads(get_blob(host, repo, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]


def test_ocillm_verifies_a_signature_made_the_cosign_way(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    """A signature written here with ``cryptography`` alone, laid out as cosign documents it."""
    ref = f"{registry.host}/acme/bot:foreign"
    digest = pushed_image(cli, tiny_gguf, ref)
    host, repo = repo_of(ref)
    private = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "foreign.pub"
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"{host}/{repo}"},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": {"creator": "a test"},
        }
    ).encode()
    payload_digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [payload_digest]}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    put_blob(host, repo, payload, payload_digest)
    put_blob(host, repo, config, config_digest)
    signature = base64.b64encode(private.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": COSIGN_PAYLOAD,
                "digest": payload_digest,
                "size": len(payload),
                "annotations": {COSIGN_SIG: signature},
            }
        ],
    }
    tag = f"sha256-{digest.split(':')[1]}.sig"
    put_manifest(host, repo, tag, json.dumps(manifest).encode(), OCI_MANIFEST)

    verified = cli("verify", ref, "--key", pub)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == digest


def _signed(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path, tag: str
) -> tuple[str, str, Path]:
    ref = f"{registry.host}/acme/bot:{tag}"
    digest = pushed_image(cli, tiny_gguf, ref)
    key, pub = keypair(cli, tmp_path)
    cli("sign", ref, "--key", key, check=True)
    return ref, digest, pub


def _refused(result: Any, ref: str, reason: str) -> None:
    assert result.returncode == 1, result.stdout
    [line] = error_lines(result.stderr)
    assert ref.split(":")[0].split("/")[-1] in line and reason in line, line


def test_verify_fails_without_a_signature(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/acme/bot:unsigned"
    digest = pushed_image(cli, tiny_gguf, ref)
    _key, pub = keypair(cli, tmp_path)
    _refused(cli("verify", ref, "--key", pub), ref, f"no signature for {digest}")


def test_verify_fails_with_the_wrong_key(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref, _digest, _pub = _signed(cli, registry, tiny_gguf, tmp_path, "wrongkey")
    _other, other_pub = keypair(cli, tmp_path, "other")
    _refused(cli("verify", ref, "--key", other_pub), ref, "no signature verifies with")


def test_verify_fails_after_the_signature_is_altered(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref, digest, pub = _signed(cli, registry, tiny_gguf, tmp_path, "badsig")
    host, repo = repo_of(ref)
    tag = f"sha256-{digest.split(':')[1]}.sig"
    manifest = get_manifest(host, repo, tag).json()
    raw = bytearray(base64.b64decode(manifest["layers"][0]["annotations"][COSIGN_SIG]))
    raw[-1] ^= 0x01
    manifest["layers"][0]["annotations"][COSIGN_SIG] = base64.b64encode(bytes(raw)).decode()
    put_manifest(host, repo, tag, json.dumps(manifest).encode(), OCI_MANIFEST)
    _refused(cli("verify", ref, "--key", pub), ref, "altered signature")


def test_verify_fails_after_the_payload_is_altered(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref, digest, pub = _signed(cli, registry, tiny_gguf, tmp_path, "badpayload")
    host, repo = repo_of(ref)
    manifest = get_manifest(host, repo, f"sha256-{digest.split(':')[1]}.sig").json()
    hexd = manifest["layers"][0]["digest"].split(":")[1]
    data = registry.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
    data.write_bytes(data.read_bytes().replace(b"cosign container", b"cosign-container"))
    _refused(cli("verify", ref, "--key", pub), ref, "signature payload was altered")


def test_verify_fails_for_a_payload_about_another_manifest(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref, digest, pub = _signed(cli, registry, tiny_gguf, tmp_path, "a")
    other = f"{registry.host}/acme/bot:b"
    other_digest = pushed_image(cli, tiny_gguf, other, "--label", "variant=b")
    assert other_digest != digest
    host, repo = repo_of(ref)
    sig = get_manifest(host, repo, f"sha256-{digest.split(':')[1]}.sig").content
    put_manifest(host, repo, f"sha256-{other_digest.split(':')[1]}.sig", sig, OCI_MANIFEST)
    _refused(cli("verify", other, "--key", pub), other, f"signed payload is for {digest}")


def test_verify_fails_after_the_manifest_is_altered(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref, digest, pub = _signed(cli, registry, tiny_gguf, tmp_path, "swap")
    host, repo = repo_of(ref)
    manifest = get_manifest(host, repo, digest).json()
    manifest.setdefault("annotations", {})["org.example.altered"] = "yes"
    body = json.dumps(manifest).encode()
    put_manifest(host, repo, "swap", body, OCI_MANIFEST)
    altered = "sha256:" + hashlib.sha256(body).hexdigest()
    _refused(cli("verify", ref, "--key", pub), ref, f"no signature for {altered}")


def test_key_generate_encrypts_with_a_password_and_sign_asks_for_it(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/acme/bot:enc"
    digest = pushed_image(cli, tiny_gguf, ref)
    prefix = tmp_path / "enc"
    cli("key", "generate", "-o", prefix, "--password-stdin", input="s3cret\n", check=True)
    key = tmp_path / "enc.key"
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert key.stat().st_mode & 0o077 == 0
    no_password = cli("sign", ref, "--key", key)
    assert no_password.returncode == 1
    assert "is encrypted: pass its password with --key-password-stdin" in no_password.stderr
    wrong = cli("sign", ref, "--key", key, "--key-password-stdin", input="nope\n")
    assert wrong.returncode == 1 and "wrong password" in wrong.stderr
    ok = cli("sign", ref, "--key", key, "--key-password-stdin", input="s3cret\n")
    assert ok.returncode == 0, ok.stderr
    verified = cli("verify", ref, "--key", tmp_path / "enc.pub")
    assert verified.stdout.strip() == digest
    again = cli("key", "generate", "-o", prefix)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_two_signatures_accumulate_under_the_cosign_tag(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref, digest, pub = _signed(cli, registry, tiny_gguf, tmp_path, "two")
    second_key, second_pub = keypair(cli, tmp_path, "second")
    cli("sign", ref, "--key", second_key, check=True)
    host, repo = repo_of(ref)
    layers = get_manifest(host, repo, f"sha256-{digest.split(':')[1]}.sig").json()["layers"]
    assert len(layers) == 2
    for public in (pub, second_pub):
        assert cli("verify", ref, "--key", public).returncode == 0

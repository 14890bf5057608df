"""``attach`` / ``discover`` / ``pull --with-referrers`` through the tag schema (Distribution 2.8
has no referrers API), and ``save`` → ``load`` keeping signatures so ``verify --local`` passes
with the registry gone; skopeo still reads the image."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from conftest import CLI
from trust_support import get_manifest, keypair, pushed_image, repo_of

SBOM = "application/spdx+json"


def _fresh(tmp_path: Path, name: str) -> dict[str, str]:
    home = tmp_path / name
    return {"OCILLM_HOME": str(home), "OCILLM_MODELS": str(home / "models")}


def test_attach_then_discover_round_trip(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/acme/bot:sbom"
    digest = pushed_image(cli, tiny_gguf, ref)
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text('{"spdxVersion": "SPDX-2.3"}')
    attached = cli("attach", ref, sbom, "--artifact-type", SBOM, "-a", "org.example.tool=test")
    assert attached.returncode == 0, attached.stderr
    assert "tag schema" in attached.stderr and "store" in attached.stderr

    found = cli("discover", ref, "--json")
    assert found.returncode == 0, found.stderr
    body = json.loads(found.stdout)
    assert body["digest"] == digest
    [entry] = body["referrers"]
    assert entry["artifactType"] == SBOM and entry["source"] == "tag schema"
    assert entry["annotations"] == {"org.example.tool": "test"}

    # The tag schema's index, read without ocillm: sha256-<hex> lists the referrer.
    host, repo = repo_of(ref)
    index = get_manifest(host, repo, f"sha256-{digest.split(':')[1]}").json()
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["digest"] for m in index["manifests"]] == [entry["digest"]]
    referrer = get_manifest(host, repo, entry["digest"]).json()
    assert referrer["subject"]["digest"] == digest and referrer["artifactType"] == SBOM
    assert referrer["layers"][0]["annotations"]["org.opencontainers.image.title"] == sbom.name

    local = json.loads(cli("discover", ref, "--local", "--json", check=True).stdout)
    assert [r["artifactType"] for r in local["referrers"]] == [SBOM]
    plain = cli("discover", ref, check=True).stdout
    assert SBOM in plain and "tag schema" in plain


def test_pull_with_referrers_brings_signatures_and_attachments(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/acme/bot:with"
    digest = pushed_image(cli, tiny_gguf, ref)
    key, pub = keypair(cli, tmp_path)
    cli("sign", ref, "--key", key, check=True)
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# a card\n")
    cli("attach", ref, card, "--artifact-type", "text/markdown", check=True)

    env = _fresh(tmp_path, "other")
    pulled = cli("pull", ref, "--with-referrers", "-q", env=env)
    assert pulled.returncode == 0, pulled.stderr
    found = json.loads(cli("discover", ref, "--local", "--json", env=env, check=True).stdout)
    types = sorted(r["artifactType"] for r in found["referrers"])
    assert types == ["application/vnd.oci.image.config.v1+json", "text/markdown"]
    verified = cli("verify", ref, "--key", pub, "--local", env=env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == digest


def test_save_then_load_keeps_signatures_and_verify_works_offline(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/acme/bot:airgap"
    digest = pushed_image(cli, tiny_gguf, ref)
    key, pub = keypair(cli, tmp_path)
    cli("sign", ref, "--key", key, check=True)
    tar = tmp_path / "bundle.tar"
    cli("save", ref, "-o", tar, "-q", check=True)
    registry.stop()  # no network from here on

    env = _fresh(tmp_path, "airgapped")
    loaded = cli("load", "-i", tar, env=env)
    assert loaded.returncode == 0, loaded.stderr
    verified = cli("verify", ref, "--key", pub, "--local", env=env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == digest
    _other, other_pub = keypair(cli, tmp_path, "other")
    assert cli("verify", ref, "--key", other_pub, "--local", env=env).returncode == 1

    skopeo = shutil.which("skopeo")
    assert skopeo is not None
    for source in (f"oci:{env['OCILLM_MODELS']}:{ref}", f"oci-archive:{tar}:{ref}"):
        raw = subprocess.run(
            [skopeo, "inspect", "--raw", source], capture_output=True, text=True, timeout=60
        )
        assert raw.returncode == 0, raw.stderr
        assert "application/vnd.cncf.model.manifest.v1+json" in raw.stdout


def test_prune_keeps_signatures_of_tagged_images(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/acme/bot:prune"
    pushed_image(cli, tiny_gguf, ref)
    key, pub = keypair(cli, tmp_path)
    cli("sign", ref, "--key", key, check=True)
    cli("prune", check=True)
    assert cli("verify", ref, "--key", pub, "--local").returncode == 0

"""Helpers the trust tests share: a signed image on a registry, raw registry reads and writes
with plain ``requests`` (independent of ocillm's client), and a policy file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from conftest import CLI
from test_registry_transfer import build_tiny


def keypair(cli: CLI, where: Path, name: str = "cosign") -> tuple[Path, Path]:
    prefix = where / name
    cli("key", "generate", "--output", prefix, check=True)
    return prefix.with_name(name + ".key"), prefix.with_name(name + ".pub")


def pushed_image(cli: CLI, tiny_gguf: Path, ref: str, *extra: str) -> str:
    """Build ``ref`` from the tiny GGUF and push it; returns the manifest digest."""
    digest = build_tiny(cli, tiny_gguf, ref, *extra)
    cli("push", ref, "--quiet", check=True)
    return digest


def repo_of(ref: str) -> tuple[str, str]:
    host, _, rest = ref.partition("/")
    return host, rest.split("@")[0].rsplit(":", 1)[0]


def get_manifest(host: str, repo: str, target: str, auth: Any = None) -> requests.Response:
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
    return requests.get(
        f"http://{host}/v2/{repo}/manifests/{target}", headers={"Accept": accept}, timeout=30
    )


def get_blob(host: str, repo: str, digest: str) -> bytes:
    response = requests.get(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=30)
    response.raise_for_status()
    return response.content


def put_manifest(host: str, repo: str, target: str, body: bytes, media: str) -> None:
    response = requests.put(
        f"http://{host}/v2/{repo}/manifests/{target}",
        data=body,
        headers={"Content-Type": media},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def put_blob(host: str, repo: str, data: bytes, digest: str) -> None:
    start = requests.post(f"http://{host}/v2/{repo}/blobs/uploads/", timeout=30)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    sep = "&" if "?" in location else "?"
    done = requests.put(f"{location}{sep}digest={digest}", data=data, timeout=30)
    assert done.status_code == 201, done.text


def write_policy(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(json.dumps(body))
    return path

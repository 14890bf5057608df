"""Interop with real peers: skopeo reads and copies what ocillm pushes, ocillm pulls what
oras-py pushes, and ``save``/``load`` moves images through an OCI-layout tar skopeo reads."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import oras.client
import pytest
from conftest import CLI
from test_registry_transfer import build_tiny, error_lines

from ocillm.oci import parse_reference
from ocillm.oci.digest import sha256_digest
from ocillm.registry import pull
from ocillm.store import Store


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("skopeo")
    if binary is None:
        pytest.fail("skopeo is not installed: run the README's test command", pytrace=False)
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def test_skopeo_inspects_and_copies_a_modelpack_push(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/tiny:mp"
    built = build_tiny(cli, tiny_gguf, ref)
    cli("push", ref, "--quiet", check=True)

    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}")
    assert raw.returncode == 0, raw.stderr
    assert sha256_digest(raw.stdout.encode()) == built  # the bytes ocillm stored and pushed
    assert json.loads(raw.stdout)["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"

    copy = f"{registry.host}/mirror/tiny:mp"
    copied = skopeo(
        "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
        f"docker://{ref}", f"docker://{copy}",
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    result = pull(parse_reference(copy), Store.open(tmp_path / "s"))
    assert result.digest == built and result.format == "modelpack"

    layout = skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path}/dir:x")
    assert layout.returncode == 0, layout.stderr


def test_skopeo_inspects_an_ollama_format_push(cli: CLI, registry: Any, tiny_gguf: Path) -> None:
    ref = f"{registry.host}/team/tiny:ol"
    build_tiny(cli, tiny_gguf, ref)
    cli("push", ref, "--format", "ollama", check=True)
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}")
    assert raw.returncode == 0, raw.stderr
    manifest = json.loads(raw.stdout)
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert {layer["mediaType"] for layer in manifest["layers"]} >= {
        "application/vnd.ollama.image.model",
        "application/vnd.ollama.image.system",
    }


def test_pull_a_plain_artifact_oras_py_pushed(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "oras"
    work.mkdir()
    shutil.copy(tiny_gguf, work / "weights.gguf")
    monkeypatch.chdir(work)  # oras-py names layers by the relative path it is given
    target = f"{registry.host}/plain/artifact:1"
    response = oras.client.OrasClient(hostname=registry.host, insecure=True).push(
        target=target, files=["weights.gguf"]
    )
    assert response.status_code == 201

    out = cli("pull", target)
    assert out.returncode == 0, out.stderr
    assert "(oras)" in out.stdout
    shown = cli("show", target, "--json", check=True)
    assert json.loads(shown.stdout)["model_info"]["general.architecture"] == "llama"


def test_save_rm_load_keeps_digests_and_skopeo_reads_the_tar(
    cli: CLI, tiny_gguf: Path, tmp_path: Path
) -> None:
    first = "example.com/team/tiny:1"
    second = "example.com/team/tiny:ollama"
    built = build_tiny(cli, tiny_gguf, first)
    other = build_tiny(cli, tiny_gguf, second, "--format", "ollama")
    archive = tmp_path / "models.tar"
    out = cli("save", "-o", archive, first, second)
    assert out.returncode == 0, out.stderr

    raw = skopeo("inspect", "--raw", f"oci-archive:{archive}:{first}")
    assert raw.returncode == 0, raw.stderr
    assert sha256_digest(raw.stdout.encode()) == built

    cli("rm", first, second, check=True)
    assert json.loads(cli("list", "--json", check=True).stdout)["models"] == []
    loaded = cli("load", "-i", archive)
    assert loaded.returncode == 0, loaded.stderr
    listed = {m["name"]: m["digest"] for m in json.loads(cli("list", "--json").stdout)["models"]}
    assert listed == {first: built.split(":", 1)[1], second: other.split(":", 1)[1]}
    assert "temperature" in cli("show", first, "--parameters", check=True).stdout


def test_load_refuses_a_tampered_archive_and_keeps_nothing(
    cli: CLI, tiny_gguf: Path, tmp_path: Path, ocillm_home: Path
) -> None:
    ref = "example.com/team/tiny:tamper"
    build_tiny(cli, tiny_gguf, ref)
    archive = tmp_path / "one.tar"
    cli("save", "-o", archive, ref, check=True)
    cli("rm", ref, check=True)
    data = bytearray(archive.read_bytes())
    weights = data.find(b"GGUF")  # the model layer's first bytes inside the tar
    data[weights + 4096] ^= 0xFF
    archive.write_bytes(bytes(data))
    out = cli("load", "-i", archive)
    assert out.returncode == 1
    (line,) = error_lines(out.stderr)
    assert "digest mismatch" in line
    store = Store.open(ocillm_home / "models")
    assert store.images() == []
    assert not any(p.name.startswith("tmp-") for p in store.blobs.ingest.iterdir())

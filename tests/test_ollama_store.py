"""`ocillm import --from-ollama` and `ocillm export --to-ollama` on stores laid out as Ollama does
(manifests/<host>/<namespace>/<model>/<tag>, blobs/sha256-<hex>; see the Ollama reference §2)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ocillm.oci.reference import parse_reference
from ocillm.ollama_store import OllamaStore, export_ollama, import_ollama
from ocillm.store import Store


def _blob(root: Path, data: bytes, media: str) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / f"sha256-{digest[7:]}").write_bytes(data)
    return {"mediaType": media, "digest": digest, "size": len(data)}


def ollama_store(root: Path, gguf: Path) -> str:
    """An Ollama store with registry.ollama.ai/library/tiny:latest, as `ollama pull` leaves it."""
    model = _blob(root, gguf.read_bytes(), "application/vnd.ollama.image.model")
    params = _blob(root, b'{"stop":["<|im_end|>"],"temperature":0.2}',
                   "application/vnd.ollama.image.params")  # fmt: skip
    config = _blob(root, json.dumps({"model_format": "gguf", "model_family": "llama",
        "model_families": ["llama"], "model_type": "1M", "file_type": "F32",
        "architecture": "amd64", "os": "linux"}, separators=(",", ":")).encode(),
        "application/vnd.docker.container.image.v1+json")  # fmt: skip
    manifest = json.dumps({"schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": config, "layers": [model, params]}, separators=(",", ":")).encode()  # fmt: skip
    path = root / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    path.parent.mkdir(parents=True)
    path.write_bytes(manifest)
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def test_import_keeps_names_and_digests_and_links_blobs(tmp_path: Path, tiny_gguf: Path) -> None:
    ollama = tmp_path / "ollama"
    digest = ollama_store(ollama, tiny_gguf)
    store = Store.open(tmp_path / "store")
    [done] = import_ollama(store, ollama)
    assert str(done.reference) == "registry.ollama.ai/library/tiny:latest"
    assert done.digest == digest
    assert store.resolve(parse_reference("tiny")).digest == digest
    # same filesystem: shared (reflink or hard link), never a plain copy
    assert set(done.blobs) <= {"reflink", "hardlink"} and sum(done.blobs.values()) == 3
    src = ollama / "blobs" / f"sha256-{hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()}"
    dst = store.blobs.path("sha256:" + src.name[7:])
    if done.blobs.get("hardlink"):
        assert os.stat(src).st_ino == os.stat(dst).st_ino
    again = import_ollama(store, ollama)
    assert again[0].blobs == {"present": 3}


def test_import_refuses_a_corrupt_blob_and_keeps_nothing(tmp_path: Path, tiny_gguf: Path) -> None:
    ollama = tmp_path / "ollama"
    ollama_store(ollama, tiny_gguf)
    model = next(p for p in (ollama / "blobs").iterdir() if p.stat().st_size > 10_000)
    model.write_bytes(b"not the model")
    store = Store.open(tmp_path / "store")
    try:
        import_ollama(store, ollama)
    except Exception as e:  # DigestMismatch
        assert "sha256:" in str(e)
    else:
        raise AssertionError("a corrupt blob was imported")
    assert store.images() == [] and not store.blobs.has("sha256:" + model.name[7:])


def test_round_trip_import_export_import_has_equal_digests(tmp_path: Path, tiny_gguf: Path) -> None:
    first = tmp_path / "ollama-a"
    digest = ollama_store(first, tiny_gguf)
    store = Store.open(tmp_path / "s1")
    import_ollama(store, first)
    target = tmp_path / "ollama-b"
    [out] = export_ollama(store, [parse_reference("tiny")], target)
    assert out.digest == digest and out.converted_from is None
    assert out.path == target / "manifests/registry.ollama.ai/library/tiny/latest"
    assert (
        out.path.read_bytes()
        == (first / "manifests/registry.ollama.ai/library/tiny/latest").read_bytes()
    )
    assert sorted(p.name for p in (target / "blobs").iterdir()) == sorted(
        p.name for p in (first / "blobs").iterdir()
    )
    again = Store.open(tmp_path / "s2")
    [back] = import_ollama(again, target)
    assert back.digest == digest


def test_export_converts_a_modelpack_image_to_ollama_format(
    tmp_path: Path, tiny_gguf: Path, cli: object
) -> None:
    from server_fixtures import build_model

    models = tmp_path / "models"
    build_model(models, tiny_gguf, "ghcr.io/acme/bot:1", "SYSTEM be brief\n")
    store = Store.open(models)
    target = tmp_path / "ollama"
    [out] = export_ollama(store, [parse_reference("ghcr.io/acme/bot:1")], target)
    assert out.converted_from == store.resolve(parse_reference("ghcr.io/acme/bot:1")).digest
    manifest = json.loads(out.path.read_bytes())
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    types = {layer["mediaType"] for layer in manifest["layers"]}
    assert {"application/vnd.ollama.image.model", "application/vnd.ollama.image.system"} <= types
    for blob in [manifest["config"], *manifest["layers"]]:
        data = OllamaStore(target).blob_path(blob["digest"]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"]


def test_cli_import_and_export(cli, tmp_path: Path, tiny_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    ollama = tmp_path / "ollama"
    digest = ollama_store(ollama, tiny_gguf)
    done = cli("import", "--from-ollama", str(ollama), "--json", check=True)
    assert json.loads(done.stdout)["imported"][0]["digest"] == digest
    out = tmp_path / "out"
    exported = cli("export", "--to-ollama", "tiny", str(out), check=True)
    assert "registry.ollama.ai/library/tiny/latest" in exported.stdout
    deep = cli("export", "--to-ollama", "ghcr.io/a/b/c:1", str(out))
    assert deep.returncode != 0
    # default DIR: $OLLAMA_MODELS
    env = {"OLLAMA_MODELS": str(ollama)}
    assert cli("import", "--from-ollama", "--json", env=env, check=True).returncode == 0

"""Faults against a real registry: a registry stopped mid-pull, a blob corrupted on the
registry's disk, two processes pulling one image at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, REPO_ROOT
from test_registry_transfer import build_tiny, error_lines

from ocillm.errors import RegistryError
from ocillm.image import ImageContent, Piece, Role, write_manifest
from ocillm.oci import parse_reference
from ocillm.progress import Event
from ocillm.registry import TransferOptions, pull, push
from ocillm.registry.download import partial_files
from ocillm.store import Store
from ocillm.store.copyfile import hash_file

MiB = 1 << 20
BIG = 40 * MiB


def big_image(store: Store, ref: str, tmp_path: Path) -> str:
    """A model image whose weight layer is ``BIG`` random bytes (the digest of that layer)."""
    data = tmp_path / "big.bin"
    with open(data, "wb") as f:
        for _ in range(BIG // MiB):
            f.write(os.urandom(MiB))
    imported = store.blobs.import_file(data)
    manifest, config = write_manifest(
        ImageContent(pieces=[Piece(Role.MODEL, imported.digest, imported.size)]), "modelpack"
    )
    store.blobs.put_bytes(config)
    store.tag(parse_reference(ref), store.put_manifest(manifest))
    return imported.digest


@pytest.mark.parametrize("ranged", [True, False], ids=["parallel-ranges", "single-stream"])
def test_registry_stopped_mid_pull_then_restarted_resumes_and_verifies(
    ranged: bool, registry: Any, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/big:1"
    source = Store.open(tmp_path / "source")
    weight = big_image(source, ref, tmp_path)
    push(parse_reference(ref), source)

    threshold = 8 * MiB if ranged else 1 << 40
    first = TransferOptions(range_threshold=threshold, range_segment=4 * MiB, retries=1)
    stopped = threading.Event()

    def stop_midway(event: Event) -> None:
        # The first progress event after bytes arrived: the registry dies mid-blob.
        if event.digest == weight and (event.completed or 0) > 0 and not stopped.is_set():
            stopped.set()
            registry.stop()

    store = Store.open(tmp_path / "dest")
    with pytest.raises(RegistryError) as err:
        pull(parse_reference(ref), store, options=first, report=stop_midway)
    assert stopped.is_set()
    assert registry.host in str(err.value)
    assert not store.blobs.has(weight)
    assert partial_files(store, weight)  # what arrived is kept for the next run

    registry.restart()
    second = TransferOptions(range_threshold=threshold, range_segment=4 * MiB)
    result = pull(parse_reference(ref), store, options=second)
    assert MiB <= result.stats.resumed < BIG
    assert result.stats.downloaded == BIG - result.stats.resumed  # nothing fetched twice
    assert hash_file(store.blobs.path(weight))[0] == weight
    assert not partial_files(store, weight)


def test_blob_corrupted_on_the_registry_disk_fails_and_leaves_nothing(
    cli: CLI, registry: Any, tiny_gguf: Path, ocillm_home: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/tiny:corrupt"
    build_tiny(cli, tiny_gguf, ref)
    cli("push", ref, "--quiet", check=True)
    store = Store.open(ocillm_home / "models")
    manifest = store.manifest(store.resolve(parse_reference(ref)))
    model = max(manifest.layers, key=lambda layer: layer.size)
    hex_ = model.digest.split(":", 1)[1]
    data = registry.storage / f"docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same length, one byte flipped
    data.write_bytes(bytes(raw))

    fresh = {"OCILLM_HOME": str(tmp_path / "f"), "OCILLM_MODELS": str(tmp_path / "f/m")}
    out = cli("pull", ref, env=fresh)
    assert out.returncode == 1
    (line,) = error_lines(out.stderr)
    assert "digest mismatch" in line and model.digest in line
    other = Store.open(tmp_path / "f/m")
    assert not other.blobs.has(model.digest)
    assert not partial_files(other, model.digest)
    assert not list(other.blobs.ingest.iterdir())
    assert other.images() == []


def test_two_processes_pulling_one_image_agree(
    registry: Any, tmp_path: Path, ocillm_home: Path
) -> None:
    ref = f"{registry.host}/team/big:twice"
    source = Store.open(tmp_path / "source")
    weight = big_image(source, ref, tmp_path)
    pushed = push(parse_reference(ref), source)

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ocillm", "pull", ref, "--quiet"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (stdout, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr
        assert stdout.strip() == pushed.digest
    store = Store.open(ocillm_home / "models")
    assert [str(r.reference) for r in store.images()] == [ref]
    assert hash_file(store.blobs.path(weight))[0] == weight
    assert not partial_files(store, weight)
    index = json.loads((ocillm_home / "models" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [pushed.digest]

"""A store on a really full disk: a small tmpfs that pulls, builds, tag writes and blob uploads
fill. The error names what filled up and where (a typed ``DiskFull``, HTTP 507 from the
server), a pull removes the partial data that could not be finished, and the store keeps
working afterwards (tag, rm, prune; ``index.json`` parses).

The tmpfs needs ``mount`` (root or CAP_SYS_ADMIN, as in CI); without it these tests skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CLI
from server_fixtures import ServerProcess
from test_registry_transfer import error_lines

from ocillm.errors import DiskFull
from ocillm.image import ImageContent, Piece, Role, write_manifest
from ocillm.oci import parse_reference
from ocillm.registry import TransferOptions, pull, push
from ocillm.registry.download import partial_files
from ocillm.store import Store

MiB = 1 << 20
DISK = 16 * MiB
BIG = 24 * MiB  # does not fit on DISK: 25 MB in the messages' decimal units


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for this test, unmounted at teardown."""
    where = tmp_path / "small-disk"
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0755", "tmpfs", str(where)],
            check=True,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small filesystem to fill")
    except subprocess.CalledProcessError as e:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {e.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def padded_gguf(tiny_gguf: Path, dest: Path, size: int) -> Path:
    """``tiny_gguf`` extended (sparsely) to ``size`` bytes: still a GGUF build accepts."""
    shutil.copyfile(tiny_gguf, dest)
    os.truncate(dest, size)
    return dest


def big_image(store: Store, ref: str, tmp_path: Path) -> str:
    """Tag ``ref`` in ``store``: one ``BIG`` random weight layer. Returns that layer's digest."""
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


def disk_full_line(models: Path, stderr: str, *, needs: str | None = "25 MB") -> str:
    (line,) = error_lines(stderr)
    assert "internal error" not in line
    sizes = rf"needs {needs}, \d+(\.\d)? [KM]?B free" if needs else r"\d+(\.\d)? [KM]?B free"
    pattern = rf"Error: no space left on device writing {re.escape(str(models))} \({sizes}\)"
    assert re.match(pattern, line), line
    return line


def assert_store_still_works(cli: CLI, models: Path, env: dict[str, str]) -> None:
    assert cli("tag", "tiny", "tiny-copy", env=env).returncode == 0
    assert cli("rm", "tiny-copy", env=env).returncode == 0
    assert cli("prune", env=env).returncode == 0
    names = [
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.loads((models / "index.json").read_text())["manifests"]
    ]
    assert names == ["registry.ollama.ai/library/tiny:latest"]
    assert not [p.name for p in (models / "ingest").iterdir()]


def build_tiny_into(cli: CLI, tiny_gguf: Path, env: dict[str, str], tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile.tiny"
    modelfile.write_text(f"FROM {tiny_gguf}\n")
    cli("build", "-f", modelfile, "-t", "tiny", "--quiet", env=env, check=True)


def test_pull_onto_a_full_disk_names_the_store_and_removes_the_partial(
    cli: CLI, registry: Any, small_disk: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/big:1"
    source = Store.open(tmp_path / "source")
    weight = big_image(source, ref, tmp_path)
    push(parse_reference(ref), source)

    models = small_disk / "models"
    env = {"OCILLM_HOME": str(small_disk), "OCILLM_MODELS": str(models)}
    build_tiny_into(cli, tiny_gguf, env, tmp_path)
    free_before = shutil.disk_usage(small_disk).free

    out = cli("pull", ref, env=env)
    assert out.returncode == 1
    disk_full_line(models, out.stderr)
    store = Store.open(models)
    assert not store.blobs.has(weight) and not partial_files(store, weight)
    assert shutil.disk_usage(small_disk).free >= free_before - MiB  # the disk is not left full
    assert_store_still_works(cli, models, env)


def test_ranged_pull_onto_a_full_disk_raises_disk_full_and_removes_the_partial(
    registry: Any, small_disk: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/big:ranged"
    source = Store.open(tmp_path / "source")
    weight = big_image(source, ref, tmp_path)
    push(parse_reference(ref), source)

    store = Store.open(small_disk / "models")
    ranged = TransferOptions(range_threshold=4 * MiB, range_segment=2 * MiB, concurrency=4)
    with pytest.raises(DiskFull) as err:
        pull(parse_reference(ref), store, options=ranged)
    assert err.value.path == str(store.root) and err.value.needed == BIG
    assert err.value.free is not None and err.value.free < BIG
    assert not store.blobs.has(weight) and not partial_files(store, weight)
    assert not list(store.blobs.ingest.iterdir())


def test_build_onto_a_full_disk_names_the_store_and_leaves_no_temp_file(
    cli: CLI, small_disk: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    models = small_disk / "models"
    env = {"OCILLM_HOME": str(small_disk), "OCILLM_MODELS": str(models)}
    build_tiny_into(cli, tiny_gguf, env, tmp_path)
    big = padded_gguf(tiny_gguf, tmp_path / "big.gguf", BIG)
    modelfile = tmp_path / "Modelfile.big"
    modelfile.write_text(f"FROM {big}\n")

    out = cli("build", "-f", modelfile, "-t", "big", "--quiet", env=env)
    assert out.returncode == 1
    disk_full_line(models, out.stderr)
    assert_store_still_works(cli, models, env)


def test_tag_on_a_full_disk_says_so_and_works_once_space_is_freed(
    cli: CLI, small_disk: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    models = small_disk / "models"
    env = {"OCILLM_HOME": str(small_disk), "OCILLM_MODELS": str(models)}
    build_tiny_into(cli, tiny_gguf, env, tmp_path)
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while f.write(b"\0" * (64 << 10)):
                pass
        except OSError:
            pass  # full: every block is taken

    out = cli("tag", "tiny", "tiny-copy", env=env)
    assert out.returncode == 1
    disk_full_line(models, out.stderr, needs=None)
    json.loads((models / "index.json").read_text())  # the old index, intact
    out = cli("prune", env=env)  # works on the full disk, to free what it can
    assert out.returncode == 0, out.stderr

    filler.unlink()
    assert_store_still_works(cli, models, env)


def test_blob_upload_onto_a_full_disk_is_507(small_disk: Path, tmp_path: Path) -> None:
    models = small_disk / "models"
    server = ServerProcess(
        tmp_path / "home", env={"OCILLM_MODELS": str(models), "OCILLM_RUNNER_SPARE": "0"}
    ).start()
    try:
        data = os.urandom(BIG)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = httpx.post(f"{server.url}/api/blobs/{digest}", content=data, timeout=60)
        assert resp.status_code == 507, resp.text
        message = resp.json()["error"]
        assert message.startswith(f"no space left on device writing {models} ("), message
        assert not list((models / "ingest").iterdir())
    finally:
        server.stop()

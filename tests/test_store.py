"""The local OCI-layout store: atomic verified blobs, a locked index, safe garbage collection."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from ocillm.errors import DigestMismatch, NotFound
from ocillm.oci import mediatypes as mt
from ocillm.oci.models import Descriptor, Manifest
from ocillm.oci.reference import parse_reference
from ocillm.store import Store


def _manifest(store: Store, payload: bytes) -> Descriptor:
    layer = store.blobs.put_bytes(payload)
    config = store.blobs.put_bytes(b"{}")
    manifest = Manifest(
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(media_type=mt.OCI_EMPTY, digest=config, size=2),
        layers=[Descriptor(media_type=mt.MODELPACK_WEIGHT, digest=layer, size=len(payload))],
    )
    return store.put_manifest(manifest)


def test_new_store_is_an_oci_layout(tmp_path: Path) -> None:
    Store(tmp_path / "s")
    root = tmp_path / "s"
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads((root / "index.json").read_text())["manifests"] == []
    assert (root / "blobs" / "sha256").is_dir()


def test_put_stream_verifies_before_the_blob_is_visible(tmp_path: Path) -> None:
    store = Store(tmp_path)
    data = os.urandom(3 << 20)
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    bad = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch) as err:
        store.blobs.put_stream(iter([data[:1000], data[1000:]]), expected=bad)
    assert bad in str(err.value)
    assert not store.blobs.has(bad) and not store.blobs.has(good)
    assert list(store.blobs.ingest.iterdir()) == []
    digest, size = store.blobs.put_stream(iter([data]), expected=good)
    assert (digest, size) == (good, len(data))
    assert store.blobs.path(good).read_bytes() == data


def test_import_file_copies_hashes_and_caches(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(5 << 20) + b"tail")
    digest, size, new = store.blobs.import_file(src)
    assert new
    assert digest == "sha256:" + hashlib.sha256(src.read_bytes()).hexdigest()
    assert size == src.stat().st_size
    stored = store.blobs.path(digest)
    # A copy, never a hardlink: editing the source must not change the store.
    assert stored.stat().st_ino != src.stat().st_ino
    assert store.blobs.cache.get(src.stat()) == digest
    again = store.blobs.import_file(src)
    assert (again.digest, again.new) == (digest, False)
    with open(src, "r+b") as f:
        f.write(b"X")
    assert stored.read_bytes() != src.read_bytes()
    digest2 = store.blobs.import_file(src).digest
    assert digest2 != digest  # mtime changed: re-hashed, not served from the cache


def test_read_bytes_detects_a_corrupted_blob(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.blobs.put_bytes(b"hello")
    store.blobs.path(digest).write_bytes(b"jello")
    with pytest.raises(DigestMismatch):
        store.blobs.read_bytes(digest)


def test_tag_resolve_untag(tmp_path: Path) -> None:
    store = Store(tmp_path)
    desc = _manifest(store, b"weights")
    ref = parse_reference("acme/tiny:1")
    store.tag(ref, desc)
    assert store.resolve(ref).digest == desc.digest
    assert store.resolve(ref.with_digest(desc.digest)).digest == desc.digest
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["manifests"][0]["annotations"][mt.ANN_REF_NAME] == str(ref)
    store.tag(ref, desc)  # re-tagging replaces, never duplicates
    assert len(store.images()) == 1
    store.untag(ref)
    with pytest.raises(NotFound, match="not found"):
        store.resolve(ref)


def test_remove_keeps_blobs_other_images_share(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a = _manifest(store, b"shared weights")
    b = _manifest(store, b"shared weights")  # same layers and config: same manifest digest
    store.tag(parse_reference("a"), a)
    store.tag(parse_reference("b"), b)
    store.remove(parse_reference("a"))
    assert store.blobs.has(a.digest)
    store.remove(parse_reference("b"))
    assert store.blobs.digests() == []


def test_prune_deletes_only_unreferenced(tmp_path: Path) -> None:
    store = Store(tmp_path)
    kept = _manifest(store, b"kept")
    store.tag(parse_reference("kept"), kept)
    orphan = store.blobs.put_bytes(b"orphan")
    count, freed = store.prune()
    assert (count, freed) == (1, len(b"orphan"))
    assert not store.blobs.has(orphan)
    assert store.blobs.has(kept.digest)


def _hold_writing(root: str, ready: mp.synchronize.Event, release: mp.synchronize.Event) -> None:
    store = Store(Path(root))
    with store.writing():
        store.blobs.put_bytes(b"about to be tagged")
        ready.set()
        release.wait(30)
        store.tag(parse_reference("late"), _manifest(store, b"about to be tagged"))


def test_prune_waits_for_a_concurrent_build(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_writing, args=(str(tmp_path), ready, release))
    proc.start()
    assert ready.wait(30)
    store = Store(tmp_path)
    result: list[tuple[int, int]] = []
    import threading

    pruner = threading.Thread(target=lambda: result.append(store.prune()))
    pruner.start()
    pruner.join(1.0)
    assert pruner.is_alive(), "prune must wait while a build holds the store"
    release.set()
    proc.join(30)
    pruner.join(30)
    assert result == [(0, 0)]
    assert store.resolve(parse_reference("late"))


def _churn(root: str, worker: int, rounds: int) -> None:
    store = Store(Path(root))
    for i in range(rounds):
        with store.writing():
            desc = _manifest(store, f"w{worker}-{i % 3}".encode())
            store.tag(parse_reference(f"m{worker}:{i % 4}"), desc)
        if i % 3 == 2:
            with contextlib.suppress(NotFound):
                store.remove(parse_reference(f"m{worker}:{(i - 1) % 4}"))
        if i % 5 == 4:
            store.prune()


def test_concurrent_processes_leave_a_consistent_store(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_churn, args=(str(tmp_path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = Store(tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())
    names = [m["annotations"][mt.ANN_REF_NAME] for m in index["manifests"]]
    assert len(names) == len(set(names))
    for record in store.images():
        manifest = store.manifest(record.descriptor)  # verified read: present and intact
        for layer in [manifest.config, *manifest.layers]:
            store.blobs.read_bytes(layer.digest)
    assert not list(store.blobs.ingest.glob("tmp-*"))

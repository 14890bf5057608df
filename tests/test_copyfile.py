"""Copying a file into the store where the kernel offers no copy call (macOS has no
``os.copy_file_range``, and no ``FICLONE``): the bytes still arrive, hashed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ocillm.store import Store, copyfile


def _random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def test_copy_without_copy_file_range_reads_and_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    # No reflink either, as on macOS, so the read/write path does the whole copy on any disk.
    monkeypatch.setattr(copyfile, "_reflink", lambda src, dst: False)
    size = 3 * copyfile.CHUNK + 12345  # several chunks and a ragged end
    data = _random_file(tmp_path / "src.bin", size)
    digest, hashed, reflinked = copyfile.copy_and_hash(tmp_path / "src.bin", tmp_path / "dst.bin")
    assert (tmp_path / "dst.bin").read_bytes() == data
    assert (digest, hashed, reflinked) == (
        "sha256:" + hashlib.sha256(data).hexdigest(),
        size,
        False,
    )


def test_a_build_import_works_without_copy_file_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_gguf: Path
) -> None:
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    store = Store.open(tmp_path / "store")
    imported = store.blobs.import_file(tiny_gguf)
    assert store.blobs.path(imported.digest).read_bytes() == tiny_gguf.read_bytes()
    assert imported.digest == "sha256:" + hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()

"""Content-addressed blobs under ``blobs/sha256``; partial data lives in ``ingest/`` until verified.

Every temp file is claimed with a :class:`~ocillm.store.ingest.TempHold` (a lock that tells
reclaimers its writer is alive) and released once it was renamed or deleted. A write that
finds the disk full removes its temp file and raises :class:`~ocillm.errors.DiskFull`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ocillm.errors import BuildError, DigestMismatch, NotFound, StoreError
from ocillm.oci.digest import check_digest, digest_hex
from ocillm.store.copyfile import Progress, copy_and_hash, hash_file
from ocillm.store.digestcache import DigestCache, file_key
from ocillm.store.ingest import TempHold
from ocillm.store.locks import fsync_dir
from ocillm.store.space import disk_full, is_disk_full, raising_disk_full

SMALL_BLOB_LIMIT = 64 << 20


class Imported(NamedTuple):
    digest: str
    size: int
    new: bool  # False when the store already held this content


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "blobs" / "sha256"
        self.ingest = root / "ingest"
        self.cache = DigestCache(root / "cache" / "digests.json")
        self._holds: dict[Path, TempHold] = {}
        self._holds_lock = threading.Lock()

    def ensure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ingest.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.dir / digest_hex(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read_bytes(self, digest: str) -> bytes:
        """A small blob (manifest, config, text layer), verified against its digest."""
        path = self.path(digest)
        try:
            if path.stat().st_size > SMALL_BLOB_LIMIT:
                raise StoreError(f"blob {digest} is too large to read into memory")
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DigestMismatch(digest, actual, what=f"stored blob at {path}")
        return data

    def digests(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted("sha256:" + p.name for p in self.dir.iterdir() if len(p.name) == 64)

    def remove(self, digest: str) -> int:
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
            return size
        except FileNotFoundError:
            return 0

    def _stored_digest(self, src: Path) -> str | None:
        """The digest of ``src`` when it already is one of this store's blobs (no copy needed)."""
        try:
            resolved = src.resolve()
        except OSError:
            return None
        if resolved.parent == self.dir.resolve() and len(resolved.name) == 64:
            return "sha256:" + resolved.name
        return None

    # -- writing ---------------------------------------------------------------------------

    def temp_path(self) -> Path:
        """A new ``ingest/tmp-<pid>-<uuid>`` name, claimed (locked) until :meth:`commit` or
        :meth:`discard`; the file itself does not exist yet."""
        with raising_disk_full(self.root):
            self.ingest.mkdir(parents=True, exist_ok=True)
            hold = TempHold(self.ingest, self.root / "locks")
        with self._holds_lock:
            self._holds[hold.path] = hold
        return hold.path

    def discard(self, tmp: Path) -> None:
        """Delete a temp file (or partial) that will not be committed, and drop its claim."""
        with self._holds_lock:
            hold = self._holds.pop(tmp, None)
        if hold is not None:
            hold.release()
        else:
            tmp.unlink(missing_ok=True)

    def _full(self, e: OSError, tmp: Path, needed: int | None) -> BaseException:
        """The error for a write of ``tmp`` that failed: DiskFull on a full disk. Deletes
        ``tmp`` first, so the free space reported is what a retry finds."""
        self.discard(tmp)
        if not is_disk_full(e):
            return e
        return disk_full(e, self.root, needed)

    def partial_path(self, digest: str) -> Path:
        """Where a resumable download of ``digest`` accumulates (kept across runs)."""
        self.ingest.mkdir(parents=True, exist_ok=True)
        return self.ingest / f"{digest_hex(digest)}.partial"

    def commit(self, tmp: Path, *, expected: str | None = None, known: str | None = None) -> str:
        """Give a verified file its final name. ``known`` skips hashing when already hashed.

        On a mismatch the temp file is deleted and nothing becomes visible.
        """
        size: int | None = None
        try:
            actual = known or hash_file(tmp)[0]
            if expected is not None and actual != check_digest(expected):
                raise DigestMismatch(expected, actual)
            with open(tmp, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                os.fsync(f.fileno())  # may be where a full disk shows (delayed allocation)
            final = self.path(actual)
            if final.exists():
                tmp.unlink()
            else:
                os.replace(tmp, final)
                fsync_dir(self.dir)
            return actual
        except OSError as e:
            raise self._full(e, tmp, size) from None
        finally:
            self.discard(tmp)  # renamed or deleted by now: drops the claim, removes leftovers

    def put_bytes(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has(digest):
            return digest
        tmp = self.temp_path()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except OSError as e:
            raise self._full(e, tmp, len(data)) from None
        except BaseException:
            self.discard(tmp)
            raise
        return self.commit(tmp, known=digest)

    def put_stream(
        self, chunks: Iterable[bytes], *, expected: str | None = None
    ) -> tuple[str, int]:
        """Write a stream, hashing as it goes; verified against ``expected`` before it is visible."""
        tmp = self.temp_path()
        h = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
        except OSError as e:
            raise self._full(e, tmp, None) from None  # a stream's full length is not known
        except BaseException:
            self.discard(tmp)
            raise
        return self.commit(tmp, expected=expected, known="sha256:" + h.hexdigest()), size

    def import_file(self, src: Path, progress: Progress | None = None) -> Imported:
        """Copy a local file into the store (reflink or kernel copy) while hashing it.

        A digest cache keyed on (device, inode, size, mtime_ns) makes unchanged inputs free.
        """
        try:
            before = os.stat(src)
        except FileNotFoundError:
            raise BuildError(f"{src}: no such file") from None
        inside = self._stored_digest(src)
        if inside is not None:
            return Imported(inside, before.st_size, False)
        cached = self.cache.get(before)
        if cached is not None and self.has(cached):
            return Imported(cached, before.st_size, False)
        tmp = self.temp_path()
        try:
            digest, size, _ = copy_and_hash(src, tmp, progress)
            after = os.stat(src)
            if file_key(after) != file_key(before) or size != before.st_size:
                raise BuildError(f"{src}: the file changed while it was being copied")
        except OSError as e:
            raise self._full(e, tmp, before.st_size) from None
        except BaseException:
            self.discard(tmp)
            raise
        new = not self.has(digest)
        digest = self.commit(tmp, known=digest)
        with raising_disk_full(self.root):
            self.cache.put(before, digest)
        return Imported(digest, size, new)

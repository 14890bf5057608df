"""Fetch one blob into the store: streamed, resumable, in parallel ranges, verified before visible.

The bytes land in the store's ``partial_path(digest)`` (kept across runs). A blob at least
``range_threshold`` long is cut into ``range_segment`` pieces fetched by up to ``concurrency``
Range GETs at once; which pieces are done (and how far the unfinished ones got) is kept in
``<partial>.json`` so an interrupted pull resumes where it stopped. A small blob is one stream
and resumes from the partial file's length. Only a 206 whose Content-Range names exactly the
bytes asked for is trusted; a registry that ignores ranges is read from the start instead.

While the pieces arrive, this thread hashes the contiguous prefix already on disk, so the
digest is known the moment the last byte lands. A mismatch deletes the partial data and raises
:class:`DigestMismatch`; only a verified file is renamed into ``blobs/sha256``. A per-blob lock
makes two processes pulling the same blob wait for each other instead of writing one file twice.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from ocillm.errors import DigestMismatch, DiskFull, RegistryError
from ocillm.oci.digest import digest_hex
from ocillm.oci.models import Descriptor
from ocillm.registry.client import (
    RETRY_STATUSES,
    RegistryClient,
    _error_text,
    is_loopback,
    retry_after,
)
from ocillm.registry.options import REMOTE_RANGE_THRESHOLD, MiB, TransferOptions
from ocillm.registry.progress import BlobProgress
from ocillm.store import Store
from ocillm.store.locks import atomic_write, file_lock
from ocillm.store.space import disk_full, is_disk_full, raising_disk_full

CHUNK = MiB
HASH_BUFFER = 4 * MiB
SYNC_EVERY = 128 * MiB
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass
class DownloadStats:
    """What a pull moved: bytes over the network, bytes reused from an earlier partial run."""

    downloaded: int = 0
    resumed: int = 0
    present: int = 0  # blobs already in the store
    fetched: int = 0  # blobs downloaded (fully or partly) by this run
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self, downloaded: int = 0, resumed: int = 0, present: int = 0, fetched: int = 0
    ) -> None:
        with self.lock:
            self.downloaded += downloaded
            self.resumed += resumed
            self.present += present
            self.fetched += fetched


class RangesUnsupported(Exception):
    """The registry answered a Range GET with something other than the exact 206."""


class _Transient(Exception):
    """A lost connection, short body, 5xx or 429: retry, resuming from the bytes written."""

    def __init__(self, detail: str, status: int | None = None, delay: float | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.delay = delay  # the registry's Retry-After, when it sent one


@dataclass
class _Segment:
    start: int
    end: int  # exclusive
    done: int = 0

    @property
    def length(self) -> int:
        return self.end - self.start


def fetch_blob(
    client: RegistryClient,
    store: Store,
    desc: Descriptor,
    options: TransferOptions,
    progress: BlobProgress,
    stats: DownloadStats,
) -> None:
    """Make ``desc`` present and verified in ``store`` (a no-op when it already is)."""
    if store.blobs.has(desc.digest):
        stats.add(present=1)
        progress.done()
        return
    lock = store.root / "locks" / f"blob-{digest_hex(desc.digest)}.lock"
    with raising_disk_full(store.root, desc.size), file_lock(lock):
        if store.blobs.has(desc.digest):  # another process fetched it while we waited
            stats.add(present=1)
            progress.done()
            return
        stats.add(fetched=1)
        _Download(client, store, desc, options, progress, stats).run()


class _Download:
    def __init__(
        self,
        client: RegistryClient,
        store: Store,
        desc: Descriptor,
        options: TransferOptions,
        progress: BlobProgress,
        stats: DownloadStats,
    ) -> None:
        self.client = client
        self.store = store
        self.desc = desc
        self.digest = desc.digest
        self.size = desc.size
        self.options = options
        self.progress = progress
        self.stats = stats
        self.partial = store.blobs.partial_path(desc.digest)
        self.state_path = self.partial.with_name(self.partial.name + ".json")
        self.cond = threading.Condition()
        self.error: BaseException | None = None
        self.segments: list[_Segment] = []
        self.resumed_at_start = 0

    # -- plan and state ------------------------------------------------------------------------

    def _multi(self) -> bool:
        threshold = self.options.range_threshold
        if threshold is None:
            if is_loopback(self.client.host):
                return False
            threshold = REMOTE_RANGE_THRESHOLD
        return self.size >= threshold and self.options.concurrency > 1

    def _plan(self, ranged: bool) -> list[_Segment]:
        if not ranged:
            return [_Segment(0, self.size)]
        step = max(MiB, self.options.range_segment)
        return [_Segment(s, min(s + step, self.size)) for s in range(0, self.size, step)]

    def _load(self, ranged: bool) -> None:
        self.segments = self._plan(ranged)
        try:
            on_disk = self.partial.stat().st_size
        except FileNotFoundError:
            on_disk = 0
        if on_disk > self.size:
            self._discard()
            return
        state = self._read_state()
        if not ranged:
            # One stream continues the contiguous prefix; a ranged run's file may have holes.
            self.segments[0].done = on_disk if state is None else min(on_disk, _prefix(state))
            return
        if state is not None and [(s.start, s.end) for s in self.segments] == [
            (a, b) for a, b, _ in state
        ]:
            for seg, (_, _, done) in zip(self.segments, state, strict=True):
                seg.done = done

    def _read_state(self) -> list[tuple[int, int, int]] | None:
        """(start, end, done) per range from ``<partial>.json``, or None."""
        try:
            state = json.loads(self.state_path.read_text())
            if state.get("size") != self.size:
                return None
            return [
                (int(a), int(b), max(0, min(int(done), int(b) - int(a))))
                for (a, b), done in zip(state["bounds"], state["done"], strict=True)
            ]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _save(self) -> None:
        if len(self.segments) < 2:
            return
        state = {
            "size": self.size,
            "bounds": [[s.start, s.end] for s in self.segments],
            "done": [s.done for s in self.segments],
        }
        atomic_write(self.state_path, json.dumps(state).encode())

    def _discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)

    # -- the transfer --------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except OSError as e:
            if not is_disk_full(e):
                raise
            # A full disk cannot take the rest, and a partial left there keeps it full (so
            # not even a tag can be written): remove it, and say how much the blob needs.
            self._discard()
            raise disk_full(
                e, self.store.root, self.size, "the partial download was removed"
            ) from None
        except DiskFull:
            self._discard()  # commit's own cleanup left the range state
            raise

    def _run(self) -> None:
        ranged = self._multi()
        while True:
            self._load(ranged)
            try:
                actual = self._transfer()
                break
            except RangesUnsupported:
                if not ranged and self.resumed_at_start == 0:
                    raise RegistryError(
                        self.client.registry, str(self.client.ref), None,
                        f"GET blob {self.digest}: the registry sent a body of the wrong size",
                    ) from None  # fmt: skip
                self._discard()
                if ranged:
                    ranged = False
                # a single stream restarts from byte 0 without a Range header
        if actual != self.digest:
            self._discard()
            raise DigestMismatch(self.digest, actual, what=f"blob from {self.client.ref.name}")
        self.store.blobs.commit(self.partial, expected=self.digest, known=actual)
        self.state_path.unlink(missing_ok=True)
        self.progress.done()

    def _transfer(self) -> str:
        resumed = sum(s.done for s in self.segments)
        self.resumed_at_start = resumed
        self.stats.add(resumed=resumed)
        self.progress.start(resumed)
        self.error = None
        fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            pending = [s for s in self.segments if s.done < s.length]
            workers = max(1, min(self.options.concurrency, len(pending)))
            queue = list(reversed(pending))
            with ThreadPoolExecutor(workers, thread_name_prefix="ocillm-range") as pool:
                for _ in range(workers):
                    pool.submit(self._worker, fd, queue)
                try:
                    actual = self._hash(fd)
                except BaseException as e:  # Ctrl-C or a read error: stop the workers too
                    with self.cond:
                        self.error = self.error or e
                        self.cond.notify_all()
                    raise
            if self.error is not None:
                raise self.error
            assert actual is not None
            return actual
        finally:
            os.close(fd)
            # On a full disk the partial is about to be removed: no state to save for it.
            failed = self.error is not None and not is_disk_full(self.error)
            if failed and not isinstance(self.error, RangesUnsupported):
                self._save()

    def _worker(self, fd: int, queue: list[_Segment]) -> None:
        try:
            while True:
                with self.cond:
                    if self.error is not None or not queue:
                        return
                    seg = queue.pop()
                self._segment(fd, seg)
                with self.cond:
                    self.cond.notify_all()
                if len(self.segments) > 1:
                    with self.cond:
                        self._save()
        except BaseException as e:  # handed to the hashing thread, which raises it
            with self.cond:
                if self.error is None:
                    self.error = e
                self.cond.notify_all()

    def _segment(self, fd: int, seg: _Segment) -> None:
        failures = 0
        while seg.done < seg.length and self.error is None:
            before = seg.done
            try:
                self._stream(fd, seg)
            except _Transient as e:
                failures = 0 if seg.done > before else failures + 1
                if failures >= max(1, self.options.retries):
                    raise RegistryError(
                        self.client.registry, str(self.client.ref), e.status,
                        f"GET blob {self.digest}: {e} ({seg.done + seg.start} of {self.size} "
                        "bytes kept; pull again to resume)",
                    ) from None  # fmt: skip
                self.client.pause_before_retry(
                    max(1, failures),
                    max(1, self.options.retries),
                    f"{self.client.host}: GET blob {self.digest}: {e}",
                    e.delay,
                )

    def _stream(self, fd: int, seg: _Segment) -> None:
        start = seg.start + seg.done
        ranged = not (start == 0 and seg.end == self.size)
        try:
            if ranged:
                response = self.client.get_blob_stream(self.digest, start, seg.end - 1)
            else:
                response = self.client.get_blob_stream(self.digest)
        except RegistryError as e:
            if e.status is None:
                raise _Transient(e.detail) from None
            raise
        with response:
            status = response.status_code
            if status in RETRY_STATUSES:
                raise _Transient(_error_text(response), status, retry_after(response))
            if ranged and status == 200:
                raise RangesUnsupported()
            if ranged and (
                status != 206 or not _range_matches(response, start, seg.end - 1, self.size)
            ):
                raise RangesUnsupported()
            if not ranged and status != 200:
                raise self.client.fail(response, f"GET blob {self.digest}")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) != seg.length - seg.done:
                if ranged:
                    raise RangesUnsupported()
                raise self.client.fail(response, f"GET blob {self.digest}: {length} bytes sent")
            read = _reader(response)
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while seg.done < seg.length:
                try:
                    n = read(view[: min(CHUNK, seg.length - seg.done)])
                except (requests.RequestException, OSError, http.client.HTTPException) as e:
                    raise _Transient(f"connection lost ({type(e).__name__})") from None
                if n <= 0:
                    break
                _pwrite_all(fd, view[:n], seg.start + seg.done)
                with self.cond:
                    seg.done += n
                    self.cond.notify_all()
                    if self.error is not None:
                        return
                self.stats.add(downloaded=n)
                self.progress.add(n)
        if seg.done < seg.length:
            raise _Transient("connection closed early")

    def _watermark(self) -> int:
        mark = 0
        for seg in self.segments:
            mark = seg.start + seg.done
            if seg.done < seg.length:
                break
        return mark

    def _hash(self, fd: int) -> str | None:
        """Hash the contiguous prefix on disk as it grows; the digest once all bytes are in."""
        h = hashlib.sha256()
        buf = bytearray(HASH_BUFFER)
        view = memoryview(buf)
        hashed = synced = 0
        while hashed < self.size:
            with self.cond:
                while self._watermark() <= hashed and self.error is None:
                    self.cond.wait(0.5)
                if self.error is not None:
                    return None
                mark = self._watermark()
            while hashed < mark:
                n = os.preadv(fd, [view[: min(HASH_BUFFER, mark - hashed)]], hashed)
                if n <= 0:
                    raise RegistryError(
                        self.client.registry, str(self.client.ref), None,
                        f"partial file {self.partial} shrank while downloading",
                    )  # fmt: skip
                h.update(view[:n])
                hashed += n
            if hashed - synced >= SYNC_EVERY:
                # Start writeback while the rest arrives, so commit's fsync finds little left.
                os.fdatasync(fd)
                synced = hashed
        return "sha256:" + h.hexdigest()


def _reader(response: requests.Response) -> Callable[[memoryview], int]:
    """``readinto`` straight from the socket when urllib3 exposes http.client's response
    (no per-chunk allocation); otherwise copy out of ``iter_content``."""
    raw = getattr(response.raw, "_fp", None)
    if isinstance(raw, http.client.HTTPResponse) and not response.headers.get("Content-Encoding"):
        return raw.readinto
    chunks = response.iter_content(CHUNK)

    def read(buf: memoryview) -> int:
        chunk = next(chunks, b"")
        if len(chunk) > len(buf):
            raise RangesUnsupported()  # more than the segment holds: do not trust it
        buf[: len(chunk)] = chunk
        return len(chunk)

    return read


def _prefix(state: list[tuple[int, int, int]]) -> int:
    """Bytes from offset 0 that a saved state says are all on disk."""
    mark = 0
    for start, end, done in state:
        mark = start + done
        if done < end - start:
            break
    return mark


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    view = data
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _range_matches(response: requests.Response, first: int, last: int, size: int) -> bool:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
    if not match:
        return False
    total = match.group(3)
    return (
        int(match.group(1)) == first
        and int(match.group(2)) == last
        and (total == "*" or int(total) == size)
    )


def partial_files(store: Store, digest: str) -> list[Path]:
    """The partial data and state of ``digest`` (for tests and ``prune``)."""
    partial = store.blobs.partial_path(digest)
    return [p for p in (partial, partial.with_name(partial.name + ".json")) if p.exists()]

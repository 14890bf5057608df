"""The ingest area: who is still writing each file there, and reclaiming what nobody will finish.

``ingest/`` holds three kinds of file:

- ``tmp-<pid>-<uuid>``: a blob being written (build copy, upload, quantize, small blob). Its
  writer holds an exclusive ``flock`` on ``locks/tmp-<pid>-<uuid>.lock`` for the file's whole
  life, from before the file exists until after it was renamed into ``blobs/`` or deleted.
- ``<hex>.partial`` and ``<hex>.partial.json``: a resumable download and its range state; a
  pull writing it holds ``locks/blob-<hex>.lock``.
- ``.<name>.<pid>.<rand>.tmp``: an atomic rewrite of a small file (also in the store root and
  ``cache/``), alive for milliseconds.

Why a lock and not only the PID in the name: a kernel releases a ``flock`` the moment its holder
dies however it dies, so a free lock proves the writer is gone, and a busy one that it is not.
PIDs are reused and mean nothing in another PID namespace (containers sharing a store), so the
PID is only the fallback for files without a lock file (written by an older ocillm): a dead PID
is reclaimed at once, a live one after ``STALE_TEMP_SECONDS``.

Why a separate lock file and not a lock on the temp file itself: the temp file must not exist
before its writer holds the lock, or a reclaimer could lock and delete it between its creation
and the writer's ``flock``; and some writers (the kernel copy, llama.cpp's quantizer) create the
file themselves. A reclaimer deletes a lock file only while holding it, and a writer that got a
lock checks that the name still points at the inode it locked (else it takes a new name): that
closes the one race left, a reclaimer removing a lock file between a writer's open and flock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ocillm.store.locks import file_lock

#: A temp file without a lock file whose PID is alive is presumed abandoned after this long
#: (the PID may be reused): also the limit for atomic-rewrite leftovers of a live PID.
STALE_TEMP_SECONDS = 3600
#: A partial download no pull is writing is kept this long after its last byte arrived, so
#: an interrupted pull can resume; plain ``prune`` removes it afterwards, ``--ingest`` at once.
STALE_PARTIAL_SECONDS = 24 * 3600

TEMP_PREFIX = "tmp-"
_TEMP = re.compile(r"^tmp-(\d+)-[0-9a-f]+$")
_ATOMIC_TEMP = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")
_PARTIAL = re.compile(r"^([0-9a-f]{64})\.partial(\.json)?$")


class TempHold:
    """A writer's claim on one temp name: the path to write, and the lock that guards it."""

    def __init__(self, ingest: Path, locks: Path) -> None:
        locks.mkdir(parents=True, exist_ok=True)
        while True:
            name = f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
            lock_path = locks / f"{name}.lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)  # a fresh name: only a reclaimer could hold it, briefly
            if _names(fd, lock_path):
                break
            os.close(fd)  # a reclaimer removed the name between our open and flock
        self.path = ingest / name
        self.lock_path = lock_path
        self._fd: int | None = fd

    def release(self) -> None:
        """Done with the file (renamed into ``blobs/`` or not wanted): delete what is left."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
            self.lock_path.unlink(missing_ok=True)  # still holding it: no reclaimer races this
        finally:
            os.close(self._fd)
            self._fd = None


@dataclass
class Reclaimed:
    """What a sweep of ``ingest/`` removed, and the resumable downloads it left alone."""

    temp_files: int = 0
    temp_bytes: int = 0
    partials: int = 0
    partial_bytes: int = 0
    kept_partials: int = 0  # resumable, not stale yet
    kept_partial_bytes: int = 0
    busy: list[Path] = field(default_factory=list)  # being written right now

    @property
    def freed(self) -> int:
        return self.temp_bytes + self.partial_bytes


def reclaim_temps(root: Path, *, now: float | None = None) -> Reclaimed:
    """Remove temp files whose writer is gone: what every build and pull does when it starts."""
    result = Reclaimed()
    now = time.time() if now is None else now
    ingest, locks = root / "ingest", root / "locks"
    # Best effort, file by file: what cannot be removed now (a read-only store, another
    # user's file) stays for the next sweep and must not fail the build that swept.
    for path in _entries(ingest):
        with contextlib.suppress(OSError):
            if _TEMP.match(path.name):
                _reclaim_temp(path, locks / f"{path.name}.lock", now, result)
            elif _ATOMIC_TEMP.match(path.name):
                _reclaim_pid_file(path, now, result)
    for other in (root, root / "cache"):
        for path in _entries(other):
            if _ATOMIC_TEMP.match(path.name):
                with contextlib.suppress(OSError):
                    _reclaim_pid_file(path, now, result)
    for lock_path in _entries(locks):
        if lock_path.name.startswith(TEMP_PREFIX) and lock_path.name.endswith(".lock"):
            with contextlib.suppress(OSError):
                _reclaim_orphan_lock(lock_path, ingest / lock_path.name[: -len(".lock")])
    return result


def reclaim_ingest(root: Path, *, everything: bool = False, now: float | None = None) -> Reclaimed:
    """``prune``'s sweep: abandoned temp files, and partial downloads no pull is writing that
    are stale (or useless: the blob is already in the store), or all of them with
    ``everything``. Never a file a running build, pull or upload is writing."""
    now = time.time() if now is None else now
    result = reclaim_temps(root, now=now)
    partials: dict[str, list[Path]] = {}
    for path in _entries(root / "ingest"):
        match = _PARTIAL.match(path.name)
        if match:
            partials.setdefault(match.group(1), []).append(path)
    for hex_, paths in sorted(partials.items()):
        try:
            _reclaim_partial(root, hex_, paths, everything, now, result)
        except OSError:
            result.busy.extend(paths)  # e.g. no room even for its lock file: left for next time
    return result


def _reclaim_partial(
    root: Path, hex_: str, paths: list[Path], everything: bool, now: float, result: Reclaimed
) -> None:
    with file_lock(root / "locks" / f"blob-{hex_}.lock", blocking=False) as free:
        if not free:
            result.busy.extend(paths)  # a pull is writing it (or waiting to)
            return
        size, newest = _size_and_mtime(paths)
        done = (root / "blobs" / "sha256" / hex_).is_file()
        if everything or done or now - newest > STALE_PARTIAL_SECONDS:
            for p in paths:
                p.unlink(missing_ok=True)
            result.partials += 1
            result.partial_bytes += size
        else:
            result.kept_partials += 1
            result.kept_partial_bytes += size


# -- one file at a time ---------------------------------------------------------------------------


def _reclaim_temp(path: Path, lock_path: Path, now: float, result: Reclaimed) -> None:
    if not lock_path.exists():
        _reclaim_pid_file(path, now, result)  # an older writer, or one that just finished
        return
    with _claim_if_free(lock_path) as fd:
        if fd is None:
            if lock_path.exists():
                result.busy.append(path)  # its writer is alive
            return
        if not _names(fd, lock_path):
            return  # another reclaimer got there first
        _remove(path, result)
        lock_path.unlink(missing_ok=True)


def _reclaim_orphan_lock(lock_path: Path, data: Path) -> None:
    """A lock file left by a writer killed before it wrote a byte or after it renamed its file."""
    if data.exists():
        return  # handled with its data file
    with _claim_if_free(lock_path) as fd:
        if fd is not None and _names(fd, lock_path) and not data.exists():
            lock_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _claim_if_free(lock_path: Path) -> Iterator[int | None]:
    """An open, exclusively locked descriptor of ``lock_path``, or None when it is gone or its
    writer still holds it (never created: no lock file, no claim)."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)


def _reclaim_pid_file(path: Path, now: float, result: Reclaimed) -> None:
    """A file that names its writer's PID but has no lock: gone PID at once, else by age."""
    match = _TEMP.match(path.name) or _ATOMIC_TEMP.match(path.name)
    if match is None:
        return
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return
    if _pid_alive(int(match.group(1))) and now - mtime <= STALE_TEMP_SECONDS:
        result.busy.append(path)
        return
    _remove(path, result)


def _remove(path: Path, result: Reclaimed) -> None:
    try:
        size = path.stat().st_size
        path.unlink()
    except OSError:
        return  # gone already (its writer committed it) or not ours to delete
    result.temp_files += 1
    result.temp_bytes += size


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _names(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the inode open as ``fd``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError:
        return []


def _size_and_mtime(paths: list[Path]) -> tuple[int, float]:
    size, newest = 0, 0.0
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        size += st.st_size
        newest = max(newest, st.st_mtime)
    return size, newest

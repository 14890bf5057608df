"""Copy a file into the store while hashing it: reflink where possible, never a hardlink.

The copy runs in the kernel (``FICLONE`` or ``copy_file_range``) on one thread while this
thread hashes the source, so a build costs about what hashing alone costs, with flat memory.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20
FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int)


Progress = Callable[[int], None]
PROGRESS_EVERY = 64 << 20


def hash_file(path: Path, progress: Progress | None = None) -> tuple[str, int]:
    """sha256 digest and size of a file, read in 1 MiB chunks into one reused buffer.

    ``progress`` is called with the bytes hashed so far, every 64 MiB and at the end.
    """
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    reported = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
            if progress is not None and size - reported >= PROGRESS_EVERY:
                progress(size)
                reported = size
    if progress is not None:
        progress(size)
    return "sha256:" + h.hexdigest(), size


def _reflink(src_fd: int, dst_fd: int) -> bool:
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
        return True
    except OSError:
        return False


def _kernel_copy(src_fd: int, dst_fd: int, size: int) -> None:
    offset = 0
    # os.copy_file_range exists on Linux only (not on macOS or the BSDs): there, read and write.
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        try:
            while offset < size:
                n = copy_range(src_fd, dst_fd, min(size - offset, 1 << 30))
                if n == 0:
                    break
                offset += n
            return
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    os.lseek(src_fd, offset, os.SEEK_SET)
    os.lseek(dst_fd, offset, os.SEEK_SET)
    while chunk := os.read(src_fd, CHUNK):
        view = memoryview(chunk)
        while view:  # write() may take less than it was given
            view = view[os.write(dst_fd, view) :]


def copy_and_hash(src: Path, dst: Path, progress: Progress | None = None) -> tuple[str, int, bool]:
    """Copy ``src`` to the new file ``dst`` and hash ``src``; returns (digest, size, reflinked)."""
    with open(src, "rb", buffering=0) as fsrc, open(dst, "xb", buffering=0) as fdst:
        size = os.fstat(fsrc.fileno()).st_size
        reflinked = _reflink(fsrc.fileno(), fdst.fileno())
        error: list[BaseException] = []
        copier: threading.Thread | None = None
        if not reflinked:
            # A separate fd, so the copier's offset does not race the hasher's reads.
            copy_src = os.open(src, os.O_RDONLY)

            def run() -> None:
                try:
                    _kernel_copy(copy_src, fdst.fileno(), size)
                except BaseException as e:  # surfaced after join
                    error.append(e)
                finally:
                    os.close(copy_src)

            copier = threading.Thread(target=run, name="ocillm-copy", daemon=True)
            copier.start()
        digest, hashed = hash_file(src, progress)
        if copier is not None:
            copier.join()
        if error:
            raise error[0]
        os.fsync(fdst.fileno())
    return digest, hashed, reflinked

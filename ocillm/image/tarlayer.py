"""Uncompressed, reproducible tar layers written straight into the store, hashed once.

An image layer must be a tar, so the GGUF cannot be the layer's bytes; the tar is written by
streaming: headers go through this process, the file's bytes are cloned (``FICLONERANGE``) or
copied in the kernel (``copy_file_range``) while the same bytes are hashed here, and the blob is
committed with the digest computed on the way. Memory stays flat whatever the file size.

A file's data starts on a 4 KiB boundary (a PAX ``comment`` record pads its header), so on a
reflink filesystem (XFS, btrfs) the clone shares the GGUF's extents: the second form then costs
a few KiB of disk, not a second copy. Entries carry uid/gid 0, fixed modes and one mtime, and
are written in the order given, so the same inputs give the same layer digest.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct
import tarfile
import threading
from pathlib import Path
from typing import BinaryIO

from ocillm.store.blobs import BlobStore

BLOCK = 512
ALIGN = 4096  # the filesystem block a clone needs data to start on
CHUNK = 1 << 20
FICLONERANGE = 0x4020940D  # linux/fs.h _IOW(0x94, 13, struct file_clone_range)


class TarLayer:
    """One layer being written: add entries, then :meth:`commit` for ``(digest, size)``."""

    def __init__(self, blobs: BlobStore, *, mtime: int = 0) -> None:
        self.blobs = blobs
        self.mtime = mtime
        self.tmp = blobs.temp_path()
        self._f: BinaryIO = open(self.tmp, "xb", buffering=0)  # noqa: SIM115 (closed in commit)
        self._hash = hashlib.sha256()
        self.size = 0

    def _info(self, name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.size, info.mtime = kind, mode, size, self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._f.fileno(), view) :]
        self.size += len(data)

    def _pad(self) -> None:
        if self.size % BLOCK:
            self._write(b"\0" * (BLOCK - self.size % BLOCK))

    def directory(self, name: str) -> None:
        self._write(
            self._info(name.rstrip("/") + "/", tarfile.DIRTYPE, 0o755).tobuf(tarfile.PAX_FORMAT)
        )

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._write(info.tobuf(tarfile.PAX_FORMAT))

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._write(self._info(name, tarfile.REGTYPE, mode, len(data)).tobuf(tarfile.PAX_FORMAT))
        self._write(data)
        self._pad()

    def add_file(self, name: str, src: Path, mode: int = 0o644) -> None:
        """``src``'s bytes as ``name``, starting on a 4 KiB boundary, cloned or kernel-copied."""
        size = src.stat().st_size
        self._write(self._aligned_header(name, size, mode))
        with open(src, "rb", buffering=0) as fsrc:
            if os.fstat(fsrc.fileno()).st_size != size:
                raise OSError(errno.EIO, f"{src} changed size while it was read")
            self._copy_data(fsrc.fileno(), src, size)
        self._pad()

    def _aligned_header(self, name: str, size: int, mode: int) -> bytes:
        info = self._info(name, tarfile.REGTYPE, mode, size)
        plain = info.tobuf(tarfile.PAX_FORMAT)
        if (self.size + len(plain)) % ALIGN == 0:
            return plain
        # A PAX header grows in 512-byte blocks; pad its comment until the data lands aligned.
        for n in range(ALIGN + BLOCK):
            info.pax_headers = {"comment": "x" * n}
            buf = info.tobuf(tarfile.PAX_FORMAT)
            if (self.size + len(buf)) % ALIGN == 0:
                return buf
        raise AssertionError("no PAX padding aligns the header")  # unreachable: blocks cycle

    def _copy_data(self, src_fd: int, src: Path, size: int) -> None:
        dst_fd = self._f.fileno()
        offset = self.size
        error: list[BaseException] = []
        cloned = _clone_range(src_fd, dst_fd, offset, size)
        copier: threading.Thread | None = None
        if not cloned:
            copy_src = os.open(src, os.O_RDONLY)  # its own offset; the hasher reads on src_fd

            def run() -> None:
                try:
                    _kernel_copy(copy_src, dst_fd, offset, size)
                except BaseException as e:  # surfaced after join
                    error.append(e)
                finally:
                    os.close(copy_src)

            copier = threading.Thread(target=run, name="ocillm-tar-copy", daemon=True)
            copier.start()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        done = 0
        while done < size:
            n = os.readv(src_fd, [view[: min(CHUNK, size - done)]])
            if n == 0:
                break
            self._hash.update(view[:n])
            done += n
        if copier is not None:
            copier.join()
        if error:
            raise error[0]
        if done != size:
            raise OSError(errno.EIO, f"{src} ended after {done} of {size} bytes")
        self.size += size
        os.lseek(dst_fd, self.size, os.SEEK_SET)

    def commit(self) -> tuple[str, int]:
        """End the archive, fsync, and give the blob its name; returns ``(digest, size)``."""
        try:
            self._write(b"\0" * (2 * BLOCK))
            self._f.close()
        except BaseException:
            self.discard()
            raise
        digest = self.blobs.commit(self.tmp, known="sha256:" + self._hash.hexdigest())
        return digest, self.size

    def discard(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.blobs.discard(self.tmp)


def _clone_range(src_fd: int, dst_fd: int, dst_offset: int, size: int) -> bool:
    """Share ``src``'s extents at ``dst_offset`` (reflink filesystems); False where it cannot."""
    if size == 0 or dst_offset % ALIGN:
        return False
    try:
        # The length must be block-aligned unless it reaches src's end; 0 means "to the end".
        fcntl.ioctl(dst_fd, FICLONERANGE, struct.pack("=qQQQ", src_fd, 0, 0, dst_offset))
        return os.fstat(dst_fd).st_size >= dst_offset + size
    except OSError:
        return False


def _kernel_copy(src_fd: int, dst_fd: int, dst_offset: int, size: int) -> None:
    done = 0
    copy_range = getattr(os, "copy_file_range", None)  # Linux only
    if copy_range is not None:
        try:
            while done < size:
                n = copy_range(src_fd, dst_fd, min(size - done, 1 << 30), done, dst_offset + done)
                if n == 0:
                    break
                done += n
            if done == size:
                return
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    while done < size:
        chunk = os.pread(src_fd, min(CHUNK, size - done), done)
        if not chunk:
            raise OSError(errno.EIO, "source ended early")
        view = memoryview(chunk)
        while view:
            written = os.pwrite(dst_fd, view, dst_offset + done)
            view, done = view[written:], done + written

"""Put one blob file at a new name: reflink, else hard link, else copy; then verify it.

A blob is immutable on both sides (neither ocillm nor Ollama writes into a blob in place; both
rename new files over names), so sharing an inode with a hard link is safe, and on one
filesystem a model of many gigabytes moves in milliseconds. Across filesystems it is copied
(in the kernel). The result is always hashed against the digest the manifest names.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ocillm.errors import DigestMismatch
from ocillm.store.copyfile import _reflink, copy_and_hash, hash_file

_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES)


def place(src: Path, dst: Path, expected: str) -> str:
    """Make ``dst`` (not existing yet) hold ``src``'s bytes; returns how: reflink, hardlink or
    copy. Raises DigestMismatch (and removes ``dst``) when the bytes are not ``expected``."""
    how = _share(src, dst)
    if how == "copy":
        actual, _, reflinked = copy_and_hash(src, dst)
        how = "reflink" if reflinked else "copy"
    else:
        actual, _ = hash_file(dst)
    if actual != expected:
        dst.unlink(missing_ok=True)
        raise DigestMismatch(expected, actual, what=f"blob {src}")
    return how


def _share(src: Path, dst: Path) -> str:
    with open(src, "rb", buffering=0) as fsrc, open(dst, "xb", buffering=0) as fdst:
        if _reflink(fsrc.fileno(), fdst.fileno()):
            return "reflink"
    dst.unlink()
    try:
        os.link(src, dst)
        return "hardlink"
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
    return "copy"

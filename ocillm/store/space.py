"""A write that found the disk full becomes :class:`DiskFull`: where, how much, how much is free.

Only ENOSPC and EDQUOT are translated; every other ``OSError`` stays what it was. The free space
is measured after the caller removed its partial data, so it is what a retry would find.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ocillm.errors import DiskFull

_REASONS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def is_disk_full(e: BaseException | None) -> bool:
    return isinstance(e, OSError) and e.errno in _REASONS


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem (None if unknown)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def disk_full(e: OSError, where: Path, needed: int | None = None, detail: str = "") -> DiskFull:
    reason = _REASONS.get(e.errno or 0, "no space left on device")
    return DiskFull(str(where), needed, free_bytes(where), reason=reason, detail=detail)


@contextmanager
def raising_disk_full(where: Path, needed: int | None = None) -> Iterator[None]:
    """Turn a full disk inside the block into :class:`DiskFull` naming ``where``."""
    try:
        yield
    except OSError as e:
        if not is_disk_full(e):
            raise
        raise disk_full(e, where, needed) from None

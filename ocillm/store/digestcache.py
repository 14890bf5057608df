"""Digest cache: (device, inode, size, mtime_ns) -> sha256, so unchanged inputs are not re-hashed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ocillm.store.locks import atomic_write

MAX_ENTRIES = 4096


def file_key(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


class DigestCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._entries is None:
            try:
                raw = json.loads(self.path.read_text())
                self._entries = {str(k): str(v) for k, v in raw.items()}
            except (OSError, ValueError, AttributeError):
                self._entries = {}
        return self._entries

    def get(self, st: os.stat_result) -> str | None:
        return self._load().get(file_key(st))

    def put(self, st: os.stat_result, digest: str) -> None:
        entries = self._load()
        key = file_key(st)
        if entries.get(key) == digest:
            return
        entries[key] = digest
        while len(entries) > MAX_ENTRIES:
            entries.pop(next(iter(entries)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Last writer wins: a lost entry only costs one re-hash.
        atomic_write(self.path, json.dumps(entries).encode())

"""Thread-safe, rate-limited progress for transfers: one counter per blob, Ollama's statuses."""

from __future__ import annotations

import threading
import time

from ocillm.progress import Event, Reporter

INTERVAL = 0.1  # seconds between two events of one blob (the last one always goes out)


def short(digest: str) -> str:
    """The 12 hex digits Ollama prints (``pulling 3f9a0c1d2e4b``)."""
    return digest.split(":", 1)[-1][:12]


class Progress:
    """Serialises events from worker threads onto one reporter."""

    def __init__(self, report: Reporter) -> None:
        self._report = report
        self._lock = threading.Lock()

    def event(self, status: str, digest: str | None = None, total: int | None = None,
              completed: int | None = None, host: str | None = None) -> None:  # fmt: skip
        with self._lock:
            self._report(Event(status, digest, total, completed, host))

    def blob(self, verb: str, digest: str, total: int) -> BlobProgress:
        return BlobProgress(self, f"{verb} {short(digest)}", digest, total)


class BlobProgress:
    """Bytes done of one blob; ``add`` may be called from several threads at once."""

    def __init__(self, progress: Progress, status: str, digest: str, total: int) -> None:
        self._progress = progress
        self.status = status
        self.digest = digest
        self.total = total
        self.completed = 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._reported = -1
        self.host: str | None = None  # set by whoever knows which registry serves the bytes

    def start(self, completed: int = 0) -> None:
        with self._lock:
            self.completed = completed
        self._progress.event(self.status, self.digest, self.total, completed, self.host)

    def add(self, n: int) -> None:
        with self._lock:
            self.completed += n
            now = time.monotonic()
            if now - self._last < INTERVAL and self.completed < self.total:
                return
            self._last = now
            completed = self._reported = self.completed
        self._progress.event(self.status, self.digest, self.total, completed, self.host)

    def done(self) -> None:
        with self._lock:
            self.completed = self.total
            if self._reported == self.total:
                return
            self._reported = self.total
        self._progress.event(self.status, self.digest, self.total, self.total, self.host)

"""What the scheduler reports as it works: loads, failed loads, evictions, crashed runners.

The scheduler calls one :class:`SchedulerEvents`; this base class ignores everything, and the
daemon's metrics (:mod:`ocillm.server.metrics`) listen. ``model`` is the name ``/api/ps`` shows.
"""

from __future__ import annotations


class SchedulerEvents:
    def loaded(self, model: str, seconds: float) -> None:
        """A runner for ``model`` is loaded and healthy, ``seconds`` after its start."""

    def load_failed(self, model: str) -> None:
        """A runner for ``model`` failed to load (it exited or ran out of time)."""

    def evicted(self, model: str) -> None:
        """An idle runner for ``model`` was unloaded to make room for another."""

    def crashed(self, model: str) -> None:
        """A loaded runner for ``model`` exited without being stopped."""

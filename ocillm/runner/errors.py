"""Errors from runners, formatted for a person (the daemon turns them into HTTP statuses)."""

from __future__ import annotations

from ocillm.errors import OcillmError


class RunnerError(OcillmError):
    """A runner failed: it died, or it answered with an error. ``detail`` ends with stderr."""

    http_status = 500

    def __init__(self, message: str, *, status: int = 500) -> None:
        self.http_status = status
        super().__init__(message)


class RunnerLoadError(RunnerError):
    """A runner did not come up: the model failed to load, or the load timed out."""


class EngineError(Exception):
    """A request the model in a runner cannot serve (``status`` is the HTTP status the runner
    answers): raised by the engine and by its vision part alike."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

"""Errors at the API edge: every failure becomes Ollama's ``{"error": "..."}`` with a status.

Library errors carry ``http_status`` (:class:`ocillm.errors.OcillmError`); :class:`ApiError` is
for what only the API checks (a missing field, a capability the model lacks). The status and
text are decided here, once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ocillm.errors import OcillmError

log = logging.getLogger(__name__)


class ApiError(OcillmError):
    """A request the API refuses, with the status and text Ollama gives."""

    def __init__(self, status: int, message: str) -> None:
        self.http_status = status
        super().__init__(message)


def status_and_message(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and the one-line text an exception is reported with."""
    if isinstance(exc, OcillmError):
        return int(getattr(exc, "http_status", 500)), str(exc)
    log.error("internal error", exc_info=exc)
    return 500, f"internal error: {type(exc).__name__}: {exc}"


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ErrorShape:
    """How one API writes errors: the routes under ``prefix`` answer ``shape(status, message,
    code)`` (``model`` is that object's schema, for the OpenAPI document)."""

    prefix: str
    shape: Callable[[int, str, str | None], dict[str, Any]]
    model: type[BaseModel]


#: Registered by each API under ``ocillm.server.apis``; the longest matching prefix wins.
_SHAPES: list[ErrorShape] = []


def register_error_shape(shape: ErrorShape) -> None:
    _SHAPES[:] = sorted(
        [s for s in _SHAPES if s.prefix != shape.prefix] + [shape], key=lambda s: -len(s.prefix)
    )


def shape_for(path: str) -> ErrorShape | None:
    """The error shape of the API that owns ``path`` (None: Ollama's ``{"error": "..."}``)."""
    for shape in _SHAPES:
        if path == shape.prefix or path.startswith(shape.prefix + "/"):
            return shape
    return None


def error_for(path: str, status: int, message: str, *, code: str | None = None) -> Any:
    """The error object a request to ``path`` is answered with."""
    shape = shape_for(path)
    return {"error": message} if shape is None else shape.shape(status, message, code)


def error_body_for(path: str, status: int, message: str, *, code: str | None = None) -> bytes:
    body = error_for(path, status, message, code=code)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _loc(parts: tuple[int | str, ...]) -> str:
    shown = [str(p) for p in parts if p not in ("body",)]
    return ".".join(shown)


def describe_validation(errors: list[Any]) -> str:
    """Pydantic/FastAPI validation errors as one line: ``field: problem; field: problem``."""
    lines = []
    for err in errors:
        loc = _loc(tuple(err.get("loc", ())))
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "missing" and not loc:
            return "missing request body"
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            return f"invalid JSON: {ctx.get('error', msg)}"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines) or "invalid request"


def validation_error(exc: ValidationError) -> ApiError:
    return ApiError(400, describe_validation(list(exc.errors())))

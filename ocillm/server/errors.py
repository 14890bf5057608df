"""Errors at the API edge: every failure becomes Ollama's ``{"error": "..."}`` with a status.

Library errors carry ``http_status`` (:class:`ocillm.errors.OcillmError`); :class:`ApiError` is
for what only the API checks (a missing field, a capability the model lacks). The status and
text are decided here, once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

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


def openai_error_type(status: int) -> str:
    """OpenAI's ``error.type`` for a status, as Ollama's compatibility layer names it."""
    if status == 400:
        return "invalid_request_error"
    if status == 404:
        return "not_found_error"
    return "api_error"


def openai_error(status: int, message: str, *, code: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``: the ``/v1`` error shape."""
    return {
        "error": {
            "message": message,
            "type": openai_error_type(status),
            "param": None,
            "code": code,
        }
    }


def openai_error_body(status: int, message: str, *, code: str | None = None) -> bytes:
    body = openai_error(status, message, code=code)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def is_openai_path(path: str) -> bool:
    """Requests under ``/v1/`` are answered in OpenAI's shapes, errors included."""
    return path == "/v1" or path.startswith("/v1/")


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

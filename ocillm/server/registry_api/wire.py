"""The distribution spec's wire details: error bodies, headers, Accept, and the key check."""

from __future__ import annotations

import base64
import binascii
import hmac
import json

from starlette.responses import Response

from ocillm.oci import mediatypes as mt

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
MANIFEST_LIMIT = 4 << 20
OCI_ERROR_TYPE = "application/json; charset=utf-8"


class RegistryApiError(Exception):
    """A ``/v2/`` failure: the HTTP status and the spec's error code and message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self, *, head: bool = False) -> Response:
        body = json.dumps({"errors": [{"code": self.code, "message": self.message}]}).encode()
        headers = {API_VERSION[0]: API_VERSION[1], **self.headers}
        if head:  # a HEAD answer carries no body, only its status
            return Response(status_code=self.status, headers=headers)
        return Response(body, status_code=self.status, headers=headers, media_type=OCI_ERROR_TYPE)


def unauthorized() -> RegistryApiError:
    return RegistryApiError(
        401,
        "UNAUTHORIZED",
        "authentication required: send OCILLM_API_KEY as a Bearer token or as the Basic "
        "password (any user name)",
        {"WWW-Authenticate": 'Basic realm="ocillm"'},
    )


def authorized(header: str, api_key: str | None) -> bool:
    """No key set, ``Bearer <key>``, or ``Basic`` with the key as password (any user)."""
    if not api_key:
        return True
    scheme, _, value = header.strip().partition(" ")
    given = value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(given, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[2]
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.encode(), api_key.encode())


def accepts(accept_headers: list[str], media_type: str) -> bool:
    """Whether a manifest of ``media_type`` may answer these ``Accept`` headers.

    No header, ``*/*`` or ``application/*`` accepts anything. A list naming only other
    manifest types does not: Distribution answers it with 404, and so does ocillm.
    """
    listed = [
        item.split(";")[0].strip().lower()
        for header in accept_headers
        for item in header.split(",")
        if item.strip()
    ]
    if not listed or any(t in ("*/*", "application/*", "application/json") for t in listed):
        return True
    if media_type.lower() in listed:
        return True
    known = {*mt.MANIFEST_TYPES, *mt.INDEX_TYPES}
    return not any(t in known for t in listed)  # an Accept about something else entirely

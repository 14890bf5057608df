"""sha256 digests: validation and hashing helpers."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import AfterValidator

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def check_digest(value: str) -> str:
    if not is_digest(value):
        raise ValueError(f"invalid digest {value!r}: expected sha256:<64 lowercase hex>")
    return value


Digest = Annotated[str, AfterValidator(check_digest)]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    return check_digest(digest).split(":", 1)[1]


def normalize_digest(value: str) -> str:
    """Accept Ollama's ``sha256-<hex>`` spelling and upper-case hex too."""
    v = value.strip()
    if v.lower().startswith("sha256-"):
        v = "sha256:" + v[7:]
    v = v[:7].lower() + v[7:].lower()
    return check_digest(v)

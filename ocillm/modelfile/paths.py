"""FROM / ADAPTER / DRAFT values that name files."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ocillm.errors import ModelfileError

_MODEL_SUFFIXES = (".gguf", ".ggml", ".bin", ".safetensors", ".pth", ".pt")
_PATH_PREFIXES = ("/", "./", "../", "~", "\\", ".\\", "..\\")
_DRIVE = re.compile(r"[A-Za-z]:[\\/]")
# A blob file of a model store: Ollama's ``…/blobs/sha256-<hex>`` (what ``ollama show
# --modelfile`` prints for FROM and ADAPTER) or ocillm's own ``…/blobs/sha256/<hex>``.
_BLOB = re.compile(r"(?:^|[\\/])blobs[\\/]sha256[-/]([0-9a-f]{64})$")


def resolve_path(value: str, base_dir: Path) -> Path:
    """Where a FROM/ADAPTER/DRAFT path points, as Ollama's ``expandPath`` decides.

    Absolute paths stay as they are; ``~`` and ``~/x`` use the current user's home and
    ``~user/x`` that user's; anything else is relative to ``base_dir`` (the directory of the
    Modelfile, not the working directory). The result is absolute and normalised, but
    symlinks are not resolved.
    """
    if os.path.isabs(value) or value.startswith(("/", "\\")):
        return Path(os.path.abspath(value))
    if value.startswith("~"):
        user, _, rest = value[1:].partition("/")
        if user == "":
            home = os.path.expanduser("~")
        else:
            home = os.path.expanduser("~" + user)
            if home == "~" + user:
                raise ModelfileError(f"failed to find user '{user}'")
        return Path(os.path.abspath(os.path.join(home, rest)))
    return Path(os.path.abspath(os.path.join(base_dir, value)))


def blob_digest(value: str) -> str | None:
    """The digest a FROM/ADAPTER path names when it is a model store's blob file, else None.

    Such a path usually points into another machine's store (the Modelfile came from ``ollama
    show --modelfile``); the build then takes the blob from the local store by its digest.
    """
    match = _BLOB.search(value.strip())
    return f"sha256:{match.group(1)}" if match else None


def looks_like_path(value: str) -> bool:
    """Whether a FROM value is meant as a file rather than a model reference.

    True when it starts with ``/``, ``./``, ``../``, ``~`` or a backslash, is ``.`` or
    ``..``, starts with a drive letter (``C:\\``), contains the platform's own separator when
    that is not ``/`` (a backslash never appears in a reference), or ends with a model file
    suffix (.gguf .ggml .bin .safetensors .pth .pt). A value such as ``org/model:tag`` or
    ``hf.co/org/repo`` is a reference even though it contains ``/``: Ollama treats it as a
    path only if such a file exists, and the build checks that separately.
    """
    if value in (".", "..") or value.startswith(_PATH_PREFIXES) or _DRIVE.match(value):
        return True
    if os.sep != "/" and os.sep in value:
        return True
    if os.altsep is not None and os.altsep != "/" and os.altsep in value:
        return True  # pragma: no cover - no such platform today
    return value.lower().endswith(_MODEL_SUFFIXES)

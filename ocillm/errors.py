"""Errors a person can act on.

Every error ocillm raises on purpose is an :class:`OcillmError`. Each carries the fields a person
needs (file and line, reference, registry, status) and formats itself as one line; the CLI and the
API print ``str(err)`` and nothing else unless ``OCILLM_DEBUG=1``.
"""

from __future__ import annotations


class OcillmError(Exception):
    """Base class. ``str(err)`` is the one-line message shown to the user."""

    exit_code = 1
    http_status = 500


class UsageError(OcillmError):
    """The command line itself is wrong (exit code 2)."""

    exit_code = 2
    http_status = 400


class ModelfileError(OcillmError):
    """A Modelfile that does not parse or does not validate.

    Formats as ``FILE:LINE:COL: message`` followed by the offending line and a caret.
    """

    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        filename: str = "Modelfile",
        line: int = 0,
        column: int = 0,
        source_line: str | None = None,
    ) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column
        self.source_line = source_line
        super().__init__(self.format())

    @property
    def location(self) -> str:
        if self.line <= 0:
            return self.filename
        return f"{self.filename}:{self.line}:{max(self.column, 1)}"

    def format(self) -> str:
        text = f"{self.location}: {self.message}"
        if self.source_line is not None and self.line > 0:
            caret = " " * (max(self.column, 1) - 1) + "^"
            text += f"\n    {self.source_line}\n    {caret}"
        return text


class TemplateError(OcillmError):
    """A prompt template that does not parse or fails while rendering."""

    http_status = 400

    def __init__(self, message: str, *, line: int = 0, column: int = 0, name: str = "template"):
        self.message = message
        self.line = line
        self.column = column
        self.name = name
        where = f"{name}:{line}:{column}: " if line > 0 else f"{name}: "
        super().__init__(where + message)


class InvalidReference(OcillmError):
    """A model reference that breaks the reference grammar."""

    http_status = 400

    def __init__(self, reference: str, rule: str) -> None:
        self.reference = reference
        self.rule = rule
        super().__init__(f"invalid reference {reference!r}: {rule}")


class NotFound(OcillmError):
    """A model, tag or blob that is not in the store."""

    http_status = 404


class StoreError(OcillmError):
    """The local store is inconsistent or cannot be written."""


class ReadOnlyStore(StoreError):
    """A write to a store opened read-only (``serve --read-only``)."""

    http_status = 403

    def __init__(self, root: object) -> None:
        self.root = root
        super().__init__(
            f"the store at {root} is read-only (serve --read-only): nothing is written there"
        )


class DiskFull(StoreError):
    """A write that found no space left (or the quota used up) on the store's filesystem.

    ``path`` is the store (or other directory) written to; ``needed`` the bytes the write needed
    in all and ``free`` the bytes free once this write's partial data was removed (None when
    unknown). ``detail`` says what became of the partial data.
    """

    http_status = 507  # Insufficient Storage

    def __init__(
        self,
        path: str,
        needed: int | None,
        free: int | None,
        *,
        reason: str = "no space left on device",
        detail: str = "",
    ) -> None:
        self.path = path
        self.needed = needed
        self.free = free
        self.reason = reason
        self.detail = detail
        sizes = []
        if needed is not None:
            sizes.append(f"needs {_decimal_bytes(needed)}")
        if free is not None:
            sizes.append(f"{_decimal_bytes(free)} free")
        text = f"{reason} writing {path}"
        if sizes:
            text += f" ({', '.join(sizes)})"
        if detail:
            text += f"; {detail}"
        super().__init__(text)


def _decimal_bytes(n: int) -> str:
    """Sizes as ``list`` and progress show them (Ollama's decimal units: 25 MB, 1.5 GB)."""
    for limit, unit in ((1000**4, "TB"), (1000**3, "GB"), (1000**2, "MB"), (1000, "KB")):
        if n >= limit:
            value = n / limit
            return (
                f"{int(value)} {unit}"
                if value >= 10 or value == int(value)
                else f"{value:.1f} {unit}"
            )
    return f"{n} B"


class DigestMismatch(OcillmError):
    """Content whose sha256 differs from the digest it was announced with."""

    def __init__(self, expected: str, actual: str, what: str = "blob") -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"digest mismatch for {what} {expected}: got {actual}")


class BuildError(OcillmError):
    """A build that cannot proceed (missing file, unsupported source, bad quantization)."""

    http_status = 400


class RegistryError(OcillmError):
    """A registry refused or failed a request. Never carries credentials."""

    def __init__(self, registry: str, reference: str, status: int | None, detail: str) -> None:
        self.registry = registry
        self.reference = reference
        self.status = status
        self.detail = detail
        code = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{registry}: {reference}: {code}: {detail}")

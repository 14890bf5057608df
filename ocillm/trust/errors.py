"""The one error class of the supply-chain layer."""

from __future__ import annotations

from ocillm.errors import OcillmError


class TrustError(OcillmError):
    """A signature that does not verify, a key that cannot be read, a policy that refuses.

    ``subject`` is the reference (or file) concerned and ``reason`` what is wrong with it."""

    http_status = 403

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"{subject}: {reason}")

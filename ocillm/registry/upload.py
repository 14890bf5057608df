"""Send one blob to a registry: HEAD-skip, cross-repository mount, streamed upload.

Uploads are one streamed ``PUT …?digest=`` by default (the fastest path on every registry
that accepts it). They go in ``PATCH`` chunks when asked (``chunk_size``) or when the registry
refuses the monolithic body with 413 (a 413 to a chunk halves the chunk size, down to 256 KiB);
chunks are never smaller than the registry's ``OCI-Chunk-Min-Length``. A lost connection, a
5xx/429 (after ``Retry-After`` when given) or a token that expired mid-body restarts the upload
in a new session, with backoff; giving up names the last status. Memory stays flat: the body is
read from the store file as the socket drains it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import BinaryIO

import requests

from ocillm.errors import RegistryError
from ocillm.oci.models import Descriptor
from ocillm.registry.client import RETRY_STATUSES, RegistryClient, retry_after, with_query
from ocillm.registry.options import MiB, TransferOptions
from ocillm.registry.progress import BlobProgress
from ocillm.store import Store

DEFAULT_CHUNK = 16 * MiB
MIN_CHUNK = 256 * 1024  # the smallest chunk a 413 makes us try
OCTET = "application/octet-stream"


@dataclass
class UploadStats:
    uploaded: int = 0
    mounted: int = 0
    existing: int = 0
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, uploaded: int = 0, mounted: int = 0, existing: int = 0, sent: int = 0) -> None:
        with self.lock:
            self.uploaded += uploaded
            self.mounted += mounted
            self.existing += existing
            self.bytes_sent += sent


class _Retry(Exception):
    """A lost connection, 5xx, 429 or expired token: start the upload again in a new session."""

    def __init__(self, error: RegistryError, delay: float | None = None) -> None:
        self.error = error  # what to report when no attempt is left
        self.delay = delay


class _TooLarge(Exception):
    """413: the registry wants chunks, or smaller ones."""

    def __init__(self, refused: int) -> None:
        self.refused = refused  # the length of the body it refused


class _Body:
    """At most ``length`` bytes of ``file``, counted as the socket takes them (not iterable)."""

    def __init__(self, file: BinaryIO, length: int, progress: BlobProgress) -> None:
        self._file = file
        self._left = length
        self._length = length
        self._progress = progress
        self.sent = 0

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if size is None or size < 0 else min(size, self._left)
        data = self._file.read(n)
        self._left -= len(data)
        self.sent += len(data)
        self._progress.add(len(data))
        return data


def send_blob(
    client: RegistryClient,
    store: Store,
    desc: Descriptor,
    options: TransferOptions,
    progress: BlobProgress,
    stats: UploadStats,
    mount_from: list[str],
) -> str:
    """Make the registry hold ``desc``; returns ``existing``, ``mounted`` or ``uploaded``."""
    if client.has_blob(desc.digest):
        stats.add(existing=1)
        progress.done()
        return "existing"
    location: str | None = None
    for source in mount_from:
        location = client.mount_blob(desc.digest, source)
        if location is None:
            stats.add(mounted=1)
            progress.done()
            return "mounted"
        break  # the registry opened an upload session instead: use it
    chunked = options.chunk_size is not None
    chunk = options.chunk_size or DEFAULT_CHUNK
    attempts = max(1, options.retries)
    failures = 0
    minimum = 0
    while True:
        progress.start(0)
        try:
            if location is None:
                location, minimum = client.start_upload()
            if chunked:
                sent = _chunked(client, store, desc, location, max(chunk, minimum), progress)
            else:
                sent = _monolithic(client, store, desc, location, progress)
            stats.add(uploaded=1, sent=sent)
            progress.done()
            return "uploaded"
        except _TooLarge as e:
            # A 413 is not a transient failure: switch to chunks (or halve them), which ends,
            # since a refused chunk at the floor is an error.
            if chunked and e.refused <= max(minimum, MIN_CHUNK):
                raise RegistryError(
                    client.registry, str(client.ref), 413,
                    f"blob {desc.digest} refused even in chunks of {e.refused} bytes",
                ) from None  # fmt: skip
            chunked = True
            chunk = max(MIN_CHUNK, min(chunk, e.refused // 2))
        except _Retry as e:
            failures += 1
            if failures >= attempts:
                error = e.error
                raise RegistryError(
                    error.registry, error.reference, error.status,
                    f"upload of blob {desc.digest}: {error.detail} "
                    f"(gave up after {attempts} attempts)",
                ) from None  # fmt: skip
            reason = f"{client.host}: upload of blob {desc.digest}: {e.error.detail}"
            client.pause_before_retry(failures, attempts, reason, e.delay)
        location = None


def _monolithic(
    client: RegistryClient, store: Store, desc: Descriptor, location: str, progress: BlobProgress
) -> int:
    with store.blobs.open(desc.digest) as f:
        body = _Body(f, desc.size, progress)
        response = _send(
            client,
            "PUT",
            with_query(location, digest=desc.digest),
            {"Content-Type": OCTET, "Content-Length": str(desc.size)},
            body if desc.size else b"",
        )
    if response.status_code == 413:
        response.close()
        raise _TooLarge(desc.size)
    _check_commit(client, response, desc)
    return body.sent


def _chunked(
    client: RegistryClient,
    store: Store,
    desc: Descriptor,
    location: str,
    chunk: int,
    progress: BlobProgress,
) -> int:
    offset = 0
    with store.blobs.open(desc.digest) as f:
        while offset < desc.size:
            n = min(chunk, desc.size - offset)
            body = _Body(f, n, progress)
            headers = {
                "Content-Type": OCTET,
                "Content-Range": f"{offset}-{offset + n - 1}",
                "Content-Length": str(n),
            }
            response = _send(client, "PATCH", location, headers, body)
            if response.status_code == 413:
                response.close()
                raise _TooLarge(n)
            if response.status_code != 202:
                raise client.fail(response, f"PATCH blob {desc.digest} at {offset}")
            response.close()
            if response.headers.get("Location"):
                location = client._location(response)
            offset += n
    response = _send(
        client, "PUT", with_query(location, digest=desc.digest), {"Content-Length": "0"}, b""
    )
    _check_commit(client, response, desc)
    return offset


def _send(
    client: RegistryClient, method: str, url: str, headers: dict[str, str], body: _Body | bytes
) -> requests.Response:
    """One upload request; what calls for a fresh upload session raises :class:`_Retry`."""
    what = method
    try:
        response = client.request(method, url, headers=headers, data=body, retries=1)
    except RegistryError as e:
        if e.status is None:
            raise _Retry(e) from None
        raise
    if response.status_code in RETRY_STATUSES:
        delay = retry_after(response)
        raise _Retry(client.fail(response, what), delay)
    if (
        response.status_code == 401
        and not isinstance(body, bytes)
        and client.authenticator.unauthorized(response, sent=True)
    ):
        # The token expired (or was revoked) while the body streamed: the client cannot replay
        # a streamed body itself, so a new token and a new upload session it is.
        raise _Retry(client.fail(response, what), 0.0)
    return response


def _check_commit(client: RegistryClient, response: requests.Response, desc: Descriptor) -> None:
    if response.status_code not in (201, 204):
        raise client.fail(response, f"upload of blob {desc.digest}")
    response.close()
    returned = response.headers.get("Docker-Content-Digest")
    if returned and returned != desc.digest:
        raise RegistryError(
            client.registry, str(client.ref), response.status_code,
            f"registry stored blob {desc.digest} as {returned}",
        )  # fmt: skip

"""The write side (``OCILLM_REGISTRY_WRITE=1``): blob upload sessions and manifest PUTs.

Bytes land in the store's ingest area (a claimed temp file per session, appended to by PATCH and
PUT), are hashed and checked against the digest the client names, and only then become a blob,
as a pull's do. A manifest is accepted only when its digest matches what the URL names and every
blob (or child manifest) it lists is already in the store; then it is tagged (or, pushed by
digest, kept untagged so prune leaves it).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ocillm.errors import DigestMismatch
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import is_digest, sha256_digest
from ocillm.oci.models import Descriptor
from ocillm.oci.reference import Reference
from ocillm.server.registry_api.view import check_digest, media_type_of
from ocillm.server.registry_api.wire import RegistryApiError
from ocillm.store import Store


@dataclass
class Session:
    id: str
    name: str
    path: Path
    offset: int = 0


def upload_unknown(session_id: str) -> RegistryApiError:
    return RegistryApiError(404, "BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {session_id}")


class Uploads:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, name: str) -> Session:
        path = self.store.blobs.temp_path()
        path.touch()
        session = Session(uuid.uuid4().hex, name, path)
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str, name: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.name != name:
            raise upload_unknown(session_id)
        return session

    def append(self, session: Session, chunks: Iterable[bytes], start: int | None = None) -> None:
        """Write ``chunks`` at the session's end; ``start`` (a Content-Range) must be that end."""
        if start is not None and start != session.offset:
            raise RegistryApiError(
                416,
                "BLOB_UPLOAD_INVALID",
                f"chunk starts at {start}, the upload has {session.offset} bytes",
                {"Range": _range(session.offset)},
            )
        with open(session.path, "ab") as f:
            for chunk in chunks:
                f.write(chunk)
                session.offset += len(chunk)

    def finish(self, session: Session, digest: str) -> str:
        """Verify and commit the session's bytes as blob ``digest``; the session ends either way."""
        check_digest(digest)
        with self._lock:
            self._sessions.pop(session.id, None)
        try:
            with self.store.writing():
                return self.store.blobs.commit(session.path, expected=digest)
        except DigestMismatch as e:
            raise RegistryApiError(400, "DIGEST_INVALID", str(e)) from None

    def cancel(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)
        self.store.blobs.discard(session.path)

    def put_manifest(self, ref: Reference, target: str, data: bytes, content_type: str) -> str:
        """Store and tag a pushed manifest once it checks out; returns its digest."""
        digest = sha256_digest(data)
        if is_digest(target) and target != digest:
            raise RegistryApiError(
                400, "DIGEST_INVALID", f"manifest digest is {digest}, the URL names {target}"
            )
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError as e:
            raise RegistryApiError(400, "MANIFEST_INVALID", f"manifest is not JSON: {e}") from None
        media = media_type_of(data, content_type.split(";")[0].strip() or mt.OCI_MANIFEST)
        if media in mt.INDEX_TYPES:
            needed = [m.get("digest") for m in doc.get("manifests") or [] if isinstance(m, dict)]
        else:
            config: dict[str, object] = doc["config"] if isinstance(doc.get("config"), dict) else {}
            layers = [x for x in doc.get("layers") or [] if isinstance(x, dict)]
            needed = [config.get("digest"), *(x.get("digest") for x in layers)]
        for blob in needed:
            if not isinstance(blob, str) or not is_digest(blob):
                raise RegistryApiError(400, "MANIFEST_INVALID", f"invalid digest {blob!r}")
            if not self.store.blobs.has(blob):
                raise RegistryApiError(
                    400, "MANIFEST_BLOB_UNKNOWN", f"blob unknown to registry: {blob}"
                )
        artifact = doc.get("artifactType")
        desc = Descriptor(
            media_type=media,
            digest=digest,
            size=len(data),
            artifact_type=artifact if isinstance(artifact, str) else None,
        )
        with self.store.writing():
            self.store.blobs.put_bytes(data)
            if is_digest(target):
                self.store.add_untagged(desc)
            else:
                self.store.tag(ref.with_tag(target), desc)
        return digest

    def mount(self, digest: str) -> bool:
        """A cross-repository mount: one store holds every repository's blobs."""
        return self.store.blobs.has(check_digest(digest))


def _range(offset: int) -> str:
    return f"0-{max(0, offset - 1)}"


def range_header(session: Session) -> str:
    return _range(session.offset)

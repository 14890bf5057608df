"""``import --from-ollama``: Ollama's manifests become images in the ocillm store.

Each blob goes through the store's ingest area like any other writer (ingest, verify, commit):
placed there by reflink, hard link or copy, hashed, and only then renamed into ``blobs/``. The
manifest is kept byte for byte, so the digest ``ocillm list`` shows is Ollama's model ID.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ocillm.errors import NotFound, StoreError
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import sha256_digest
from ocillm.oci.models import Descriptor, Manifest
from ocillm.oci.reference import Reference
from ocillm.ollama_store.layout import OllamaManifest, OllamaStore
from ocillm.ollama_store.place import place
from ocillm.store import Store


@dataclass
class Imported:
    reference: Reference
    digest: str
    size: int
    blobs: Counter[str] = field(default_factory=Counter)
    """How each blob arrived: present, reflink, hardlink, copy."""


def import_ollama(store: Store, root: Path, names: Sequence[Reference] = ()) -> list[Imported]:
    """Import every manifest under ``root`` (or only ``names``) into ``store``."""
    ollama = OllamaStore(root)
    if not ollama.manifests_dir.is_dir():
        raise NotFound(f"{root}: no Ollama store here (no manifests/ directory)")
    found = list(ollama.manifests())
    if names:
        wanted = {str(n) for n in names}
        found = [m for m in found if str(m.reference) in wanted]
        missing = wanted - {str(m.reference) for m in found}
        if missing:
            raise NotFound(f"{root}: no Ollama manifest for {', '.join(sorted(missing))}")
    return [_one(store, ollama, m) for m in found]


def _one(store: Store, ollama: OllamaStore, entry: OllamaManifest) -> Imported:
    raw = entry.path.read_bytes()
    try:
        manifest = Manifest.from_bytes(raw)
    except ValueError as e:
        raise StoreError(f"{entry.path}: not a manifest: {e}") from None
    result = Imported(entry.reference, sha256_digest(raw), len(raw))
    with store.writing():
        for blob in (manifest.config, *manifest.layers):
            result.size += blob.size
            if store.blobs.has(blob.digest):
                result.blobs["present"] += 1
                continue
            src = ollama.blob_path(blob.digest)
            if not src.is_file():
                raise NotFound(f"{entry.reference}: blob {src} is missing from the Ollama store")
            tmp = store.blobs.temp_path()
            try:
                how = place(src, tmp, blob.digest)
            except BaseException:
                store.blobs.discard(tmp)
                raise
            store.blobs.commit(tmp, expected=blob.digest, known=blob.digest)
            result.blobs[how] += 1
        store.blobs.put_bytes(raw)
        media = manifest.media_type or mt.DOCKER_MANIFEST
        store.tag(
            entry.reference, Descriptor(media_type=media, digest=result.digest, size=len(raw))
        )
    return result

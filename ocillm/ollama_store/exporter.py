"""``export --to-ollama``: images written into an Ollama store so ``ollama list``/``run`` see them.

Blobs first (reflink, hard link or copy to a temporary name in ``blobs/``, verified, renamed to
``sha256-<hex>``), the manifest last and atomically: Ollama never sees a manifest whose blobs
are not there. An Ollama-format image goes byte for byte (same model ID); any other format is
converted to Ollama's (layers keep their digests, the config and manifest are new).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ocillm.errors import NotFound
from ocillm.image import detect_format, read_content
from ocillm.image.formats import parse_config, write_manifest
from ocillm.oci.digest import sha256_digest
from ocillm.oci.models import Manifest
from ocillm.oci.reference import Reference
from ocillm.ollama_store.layout import OllamaStore
from ocillm.ollama_store.place import place
from ocillm.store import Store
from ocillm.store.locks import atomic_write


@dataclass
class Exported:
    reference: Reference
    digest: str
    path: Path
    converted_from: str | None = None
    blobs: Counter[str] = field(default_factory=Counter)


def export_ollama(store: Store, refs: Sequence[Reference], root: Path) -> list[Exported]:
    ollama = OllamaStore(root)
    for ref in refs:
        ollama.manifest_path(ref)  # refuse a name Ollama cannot hold before writing anything
    return [_one(store, ollama, ref) for ref in refs]


def _one(store: Store, ollama: OllamaStore, ref: Reference) -> Exported:
    desc = store.resolve(ref)
    raw = store.blobs.read_bytes(desc.digest)
    manifest = Manifest.from_bytes(raw)
    converted_from: str | None = None
    extra: dict[str, bytes] = {}
    if detect_format(manifest) != "ollama":
        config = parse_config(store.blobs.read_bytes(manifest.config.digest))
        manifest, config_bytes = write_manifest(read_content(manifest, config), "ollama")
        extra[manifest.config.digest] = config_bytes
        converted_from, raw = desc.digest, manifest.to_bytes()
    result = Exported(ref, sha256_digest(raw), ollama.manifest_path(ref), converted_from)
    ollama.blobs_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    for blob in (manifest.config, *manifest.layers):
        dst = ollama.blob_path(blob.digest)
        if dst.is_file() and dst.stat().st_size == blob.size:
            result.blobs["present"] += 1
            continue
        if blob.digest in extra:
            atomic_write(dst, extra[blob.digest])
            os.chmod(dst, 0o644)
            result.blobs["written"] += 1
            continue
        if not store.blobs.has(blob.digest):
            raise NotFound(f"{store.display(ref)}: blob {blob.digest} is missing from the store")
        # Ollama's prune removes a name that is not a digest only after an hour.
        tmp = dst.with_name(f"{dst.name}-ocillm-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        how = place(store.blobs.path(blob.digest), tmp, blob.digest)
        os.replace(tmp, dst)
        result.blobs[how] += 1
    result.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    atomic_write(result.path, raw)
    os.chmod(result.path, 0o644)
    return result

"""Several read-only stores served as one (``serve --read-only --models A --models B``).

On Kubernetes each model arrives as its own image volume: a modelcar's ``/models`` is an OCI
layout holding one artifact. Serving them side by side needs one view over every layout: tags
from all ``index.json`` files (the first store naming a tag wins), blobs from the first store
that has them. Nothing is written to any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ocillm.errors import StoreError
from ocillm.oci.digest import digest_hex
from ocillm.oci.models import Index
from ocillm.oci.reference import DEFAULT_REGISTRY
from ocillm.store.blobs import BlobStore
from ocillm.store.store import Store


class _UnionBlobs(BlobStore):
    def __init__(self, roots: Sequence[Path]) -> None:
        super().__init__(roots[0])
        self.roots = list(roots)

    def path(self, digest: str) -> Path:
        name = digest_hex(digest)
        for root in self.roots:
            candidate = root / "blobs" / "sha256" / name
            if candidate.is_file():  # follows a modelcar's symlinks to its files
                return candidate
        return self.roots[0] / "blobs" / "sha256" / name

    def digests(self) -> list[str]:
        found: set[str] = set()
        for root in self.roots:
            found.update(BlobStore(root).digests())
        return sorted(found)


class UnionStore(Store):
    """Read-only view of ``roots``; every write raises :class:`~ocillm.errors.ReadOnlyStore`."""

    def __init__(self, roots: Sequence[Path], *, default_registry: str = DEFAULT_REGISTRY) -> None:
        if not roots:
            raise StoreError("no store to serve")
        for root in roots:
            if not (root / "index.json").is_file():
                raise StoreError(f"{root} is not an OCI image layout (no index.json)")
        super().__init__(roots[0], default_registry=default_registry, read_only=True)
        self.roots = list(roots)
        self.blobs = _UnionBlobs(self.roots)

    def read_index(self) -> Index:
        merged = Index()
        seen: set[tuple[str | None, str]] = set()
        for root in self.roots:
            for entry in Store(root, read_only=True).read_index().manifests:
                key = (entry.annotation("org.opencontainers.image.ref.name"), entry.digest)
                if key not in seen:
                    seen.add(key)
                    merged.manifests.append(entry)
        return merged


def open_read_only(roots: Sequence[Path], *, default_registry: str = DEFAULT_REGISTRY) -> Store:
    """One read-only store over ``roots`` (a plain read-only :class:`Store` when there is one)."""
    if len(roots) == 1:
        return Store.open(roots[0], default_registry=default_registry, read_only=True)
    return UnionStore(roots, default_registry=default_registry)

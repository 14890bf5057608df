"""The local store: an OCI image layout that many processes may use at once.

``index.json`` holds one entry per tag, its ``org.opencontainers.image.ref.name`` the fully
qualified reference, so skopeo and oras read the store directly. Updates of ``index.json`` hold an
exclusive lock; builds and pulls hold the GC lock shared while they write, and ``prune`` takes it
exclusively, so it never deletes a blob a concurrent build or pull is about to reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ocillm.errors import NotFound, ReadOnlyStore, StoreError
from ocillm.oci import mediatypes as mt
from ocillm.oci.models import Descriptor, Index, Manifest, canonical_json
from ocillm.oci.reference import DEFAULT_REGISTRY, Reference
from ocillm.store.blobs import BlobStore
from ocillm.store.ingest import Reclaimed, reclaim_ingest, reclaim_temps
from ocillm.store.locks import atomic_write, file_lock
from ocillm.store.space import disk_full, is_disk_full, raising_disk_full

LAYOUT = {"imageLayoutVersion": "1.0.0"}


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` deleted: unreferenced blobs, and what it reclaimed from ``ingest/``."""

    blobs: int
    blob_bytes: int
    ingest: Reclaimed


@dataclass(frozen=True)
class ImageRecord:
    reference: Reference
    descriptor: Descriptor
    modified: datetime


class Store:
    """The store at ``root``. ``default_registry`` is the one its short names mean (from
    ``Settings.default_registry``): the index holds full names, messages show short ones.

    ``read_only`` (``serve --read-only``: an image volume, a shared PVC): nothing under ``root``
    is ever created or written, not even a lock; every write raises :class:`ReadOnlyStore`."""

    def __init__(
        self, root: Path, *, default_registry: str = DEFAULT_REGISTRY, read_only: bool = False
    ) -> None:
        self.root = root
        self.default_registry = default_registry
        self.read_only = read_only
        self.blobs = BlobStore(root)
        self._index_path = root / "index.json"
        self._locks = root / "locks"
        if read_only:
            if not self._index_path.is_file():
                raise StoreError(f"{root} is not an OCI image layout (no index.json)")
        else:
            self._ensure_layout()

    @classmethod
    def open(
        cls, root: Path, *, default_registry: str = DEFAULT_REGISTRY, read_only: bool = False
    ) -> Store:
        return cls(root, default_registry=default_registry, read_only=read_only)

    def _writable(self) -> None:
        if self.read_only:
            raise ReadOnlyStore(self.root)

    def parse(self, text: str) -> Reference:
        """``text`` as a reference, short names on this store's default registry."""
        return Reference.parse(text, default_registry=self.default_registry)

    def display(self, ref: Reference) -> str:
        """The shortest name for ``ref`` that :meth:`parse` reads back."""
        return ref.display(default_registry=self.default_registry)

    def _ensure_layout(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.blobs.ensure()
            if not (self.root / "oci-layout").exists():
                atomic_write(self.root / "oci-layout", canonical_json(LAYOUT))
            if not self._index_path.exists():
                with file_lock(self._locks / "index.lock"):
                    if not self._index_path.exists():
                        atomic_write(self._index_path, canonical_json(Index().wire()))
        except OSError as e:
            if is_disk_full(e):
                raise disk_full(e, self.root) from None
            raise StoreError(f"cannot use the store at {self.root}: {e.strerror or e}") from e

    # -- index -----------------------------------------------------------------------------

    def read_index(self) -> Index:
        try:
            return Index.model_validate_json(self._index_path.read_bytes())
        except FileNotFoundError:
            return Index()
        except ValueError as e:
            raise StoreError(f"{self._index_path} is not a valid OCI index: {e}") from e

    def _update_index(self, change: Callable[[Index], None]) -> None:
        self._writable()
        with file_lock(self._locks / "index.lock"):
            index = self.read_index()
            change(index)
            with raising_disk_full(self.root):
                atomic_write(self._index_path, canonical_json(index.wire()))

    def tag(self, ref: Reference, manifest: Descriptor) -> None:
        """Point ``ref`` at a manifest already in the store (replacing what it named before)."""
        if not self.blobs.has(manifest.digest):
            raise StoreError(f"cannot tag {ref}: manifest {manifest.digest} is not in the store")
        name = str(ref)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entry = Descriptor(
            media_type=manifest.media_type,
            digest=manifest.digest,
            size=manifest.size,
            artifact_type=manifest.artifact_type,
            annotations={mt.ANN_REF_NAME: name, mt.ANN_MODIFIED: stamp},
        )

        def change(index: Index) -> None:
            index.manifests = [m for m in index.manifests if m.annotation(mt.ANN_REF_NAME) != name]
            index.manifests.append(entry)

        self._update_index(change)

    def add_untagged(self, entry: Descriptor) -> None:
        """Keep a manifest that no tag names (a signature, an SBOM) in ``index.json``, so
        prune keeps it and tools reading the layout see it; once per digest."""
        if not self.blobs.has(entry.digest):
            raise StoreError(f"cannot keep manifest {entry.digest}: it is not in the store")

        def change(index: Index) -> None:
            if not any(
                m.digest == entry.digest
                for m in index.manifests
                if not m.annotation(mt.ANN_REF_NAME)
            ):
                index.manifests.append(entry)

        self._update_index(change)

    def untag(self, ref: Reference) -> Descriptor:
        name = str(ref)
        removed: list[Descriptor] = []

        def change(index: Index) -> None:
            keep: list[Descriptor] = []
            for m in index.manifests:
                (removed if m.annotation(mt.ANN_REF_NAME) == name else keep).append(m)
            index.manifests = keep

        self._update_index(change)
        if not removed:
            raise NotFound(f"model '{self.display(ref)}' not found")
        return removed[0]

    def images(self) -> list[ImageRecord]:
        records = []
        for m in self.read_index().manifests:
            name = m.annotation(mt.ANN_REF_NAME)
            if not name:
                continue
            try:
                ref = self.parse(name)
            except Exception:
                continue  # an entry some other tool wrote; not ours to list
            records.append(ImageRecord(ref, m, _modified(m)))
        return records

    def resolve(self, ref: Reference) -> Descriptor:
        """The manifest descriptor ``ref`` names: by tag, or by digest when pinned."""
        records = self.images()
        if ref.digest is not None:
            for r in records:
                # A pull by an index's digest keeps that name for the model it picked.
                same = r.descriptor.digest == ref.digest or str(r.reference) == str(ref)
                if same and r.reference.name == ref.name:
                    return r.descriptor
            if self.blobs.has(ref.digest):
                data = self.blobs.read_bytes(ref.digest)
                media = json.loads(data).get("mediaType") or mt.OCI_MANIFEST
                return Descriptor(media_type=media, digest=ref.digest, size=len(data))
            raise NotFound(f"model '{self.display(ref)}' not found")
        name = str(ref)
        for r in records:
            if str(r.reference) == name:
                return r.descriptor
        raise NotFound(f"model '{self.display(ref)}' not found")

    def manifest(self, desc: Descriptor) -> Manifest:
        """The image manifest ``desc`` names; for an image index (a modelcar's), the model's
        entry: the ModelPack artifact, else the first image manifest."""
        data = self.blobs.read_bytes(desc.digest)
        try:
            if desc.media_type in mt.INDEX_TYPES:
                return self.manifest(_model_entry(Index.model_validate_json(data), desc))
            return Manifest.from_bytes(data)
        except ValueError as e:
            raise StoreError(f"manifest {desc.digest} is not valid: {e}") from e

    def closure(self, desc: Descriptor) -> set[str]:
        """Every digest ``desc`` needs: itself, an index's entries, each manifest's config and
        layers (what prune keeps, and what ``rm`` may delete)."""
        digests = {desc.digest}
        try:
            data = self.blobs.read_bytes(desc.digest)
            if desc.media_type in mt.INDEX_TYPES:
                for entry in Index.model_validate_json(data).manifests:
                    digests |= self.closure(entry)
                return digests
            manifest = Manifest.from_bytes(data)
        except (NotFound, StoreError, ValueError):
            return digests
        digests.add(manifest.config.digest)
        digests.update(layer.digest for layer in manifest.layers)
        return digests

    def put_manifest(self, manifest: Manifest) -> Descriptor:
        self._writable()
        data = manifest.to_bytes()
        digest = self.blobs.put_bytes(data)
        return Descriptor(
            media_type=manifest.media_type or mt.OCI_MANIFEST,
            digest=digest,
            size=len(data),
            artifact_type=manifest.artifact_type,
        )

    # -- garbage collection ----------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while writing blobs that a tag will reference: prune waits for it.

        Starting also reclaims the temp files of builds and pulls that were killed, so a
        killed build costs no space after the next one."""
        self._writable()
        with file_lock(self._locks / "gc.lock", shared=True):
            reclaim_temps(self.root)
            yield

    def referenced(self) -> set[str]:
        digests: set[str] = set()
        for m in self.read_index().manifests:
            digests |= self.closure(m)
        return digests

    def prune(self) -> tuple[int, int]:
        """Delete blobs no tagged manifest references; returns (count, bytes freed), the
        bytes including what :meth:`collect` reclaimed from ``ingest/``."""
        pruned = self.collect()
        return pruned.blobs, pruned.blob_bytes + pruned.ingest.freed

    def collect(self, *, ingest: bool = False) -> Pruned:
        """Delete unreferenced blobs, abandoned temp files and stale partial downloads
        (every partial no pull is writing, with ``ingest``); see :mod:`ocillm.store.ingest`."""
        self._writable()
        with file_lock(self._locks / "gc.lock"):
            keep = self.referenced()
            count = freed = 0
            for digest in self.blobs.digests():
                if digest not in keep:
                    freed += self.blobs.remove(digest)
                    count += 1
            return Pruned(count, freed, reclaim_ingest(self.root, everything=ingest))

    def remove(self, ref: Reference) -> int:
        """Untag ``ref``; delete the blobs it alone used unless a build or pull is running."""
        desc = self.untag(ref)
        with file_lock(self._locks / "gc.lock", blocking=False) as locked:
            if not locked:
                return 0  # left for `ocillm prune`
            keep = self.referenced()
            candidates = self.closure(desc)
            return sum(self.blobs.remove(d) for d in candidates - keep)


def _model_entry(index: Index, desc: Descriptor) -> Descriptor:
    for entry in index.manifests:
        if entry.artifact_type == mt.MODELPACK_ARTIFACT:
            return entry
    for entry in index.manifests:
        if entry.media_type in mt.MANIFEST_TYPES:
            return entry
    raise StoreError(f"image index {desc.digest} lists no image manifest")


def _modified(desc: Descriptor) -> datetime:
    stamp = desc.annotation(mt.ANN_MODIFIED)
    if stamp:
        try:
            return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.fromtimestamp(0, timezone.utc)

"""``save`` / ``load``: images as an OCI-layout tar, for sites without a registry.

The tar is an OCI image layout (``oci-layout``, ``blobs/sha256/<hex>``, ``index.json`` whose
entries carry ``org.opencontainers.image.ref.name`` = the full reference), so
``skopeo copy oci-archive:FILE.tar:REF docker://…`` reads it too. Blobs are streamed in and out
(flat memory); ``load`` verifies every blob against its name before it becomes visible and tags
an image only once its manifest, config and layers are all in the store.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from ocillm.errors import OcillmError, StoreError
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import is_digest
from ocillm.oci.models import Descriptor, Index, Manifest, canonical_json
from ocillm.oci.reference import Reference
from ocillm.progress import Event, Reporter, silent
from ocillm.registry.options import MiB
from ocillm.store import Store

LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
MAX_INDEX = 16 * MiB


class ArchiveError(OcillmError):
    """A tar that is not an OCI layout ocillm can load."""


def save(
    refs: Sequence[Reference], store: Store, output: Path, *, report: Reporter = silent
) -> list[tuple[Reference, str]]:
    """Write ``refs`` (and every blob they need) to ``output`` as an OCI-layout tar."""
    entries: list[Descriptor] = []
    digests: dict[str, int] = {}
    saved: list[tuple[Reference, str]] = []
    for ref in refs:
        desc = store.resolve(ref)
        manifest = store.manifest(desc)
        for blob in (manifest.config, *manifest.layers):
            digests.setdefault(blob.digest, blob.size)
        digests.setdefault(desc.digest, desc.size)
        entries.append(
            Descriptor(
                media_type=desc.media_type,
                digest=desc.digest,
                size=desc.size,
                artifact_type=desc.artifact_type,
                annotations={mt.ANN_REF_NAME: str(ref)},
            )
        )
        saved.append((ref, desc.digest))
        entries.extend(_referrers(store, desc.digest, digests))
    index = canonical_json(Index(manifests=entries).wire())
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.copybufsize = MiB  # type: ignore[attr-defined]  # 1 MiB reads (stubs lack it)
            _add_bytes(tar, "oci-layout", LAYOUT)
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            for digest, size in digests.items():
                report(Event(f"writing {digest.split(':', 1)[1][:12]}", digest, size, 0))
                info = _info(f"blobs/sha256/{digest.split(':', 1)[1]}", store.blobs.size(digest))
                with store.blobs.open(digest) as f:
                    tar.addfile(info, f)
                report(Event(f"writing {digest.split(':', 1)[1][:12]}", digest, size, size))
            _add_bytes(tar, "index.json", index)
        os.replace(tmp, output)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ArchiveError(f"{output}: cannot write: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report(Event("success"))
    return saved


def _referrers(store: Store, subject: str, digests: dict[str, int]) -> list[Descriptor]:
    """The store's referrers of ``subject`` (signatures, SBOMs) as untagged index entries, their
    blobs added to ``digests``: an air-gapped site verifies what it loads with no network."""
    from ocillm.trust.local import referrers

    entries: list[Descriptor] = []
    for found in referrers(store, subject):
        for blob in (found.manifest.config, *found.manifest.layers):
            digests.setdefault(blob.digest, blob.size)
        digests.setdefault(found.descriptor.digest, found.descriptor.size)
        if all(e.digest != found.descriptor.digest for e in entries):
            entries.append(found.descriptor)
    return entries


def load(archive: Path, store: Store, *, report: Reporter = silent) -> list[tuple[Reference, str]]:
    """Import every tagged image of an OCI-layout tar; returns (reference, manifest digest)."""
    index: bytes | None = None
    try:
        with store.writing(), tarfile.open(archive, "r|*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name == "index.json" and member.isfile():
                    index = _read_small(tar, member)
                elif name.startswith("blobs/sha256/") and member.isfile():
                    digest = "sha256:" + name.removeprefix("blobs/sha256/")
                    if not is_digest(digest):
                        continue
                    report(Event(f"loading {digest[7:19]}", digest, member.size, 0))
                    if not store.blobs.has(digest):
                        source = tar.extractfile(member)
                        assert source is not None
                        store.blobs.put_stream(_chunks(source), expected=digest)
                    report(Event(f"loading {digest[7:19]}", digest, member.size, member.size))
            if index is None:
                raise ArchiveError(f"{archive}: no index.json: not an OCI-layout tar")
            loaded = _tag(store, archive, index)
    except FileNotFoundError:
        raise ArchiveError(f"{archive}: no such file") from None
    except tarfile.TarError as e:
        raise ArchiveError(f"{archive}: not a readable tar: {e}") from None
    report(Event("success"))
    return loaded


def _tag(store: Store, archive: Path, index_bytes: bytes) -> list[tuple[Reference, str]]:
    try:
        index = Index.model_validate_json(index_bytes)
    except ValueError as e:
        raise ArchiveError(f"{archive}: index.json is not an OCI index: {e}") from None
    loaded = []
    for entry in index.manifests:
        name = entry.annotation(mt.ANN_REF_NAME)
        if not name:
            _keep_referrer(store, archive, entry)
            continue
        ref = store.parse(name)
        if not store.blobs.has(entry.digest):
            raise StoreError(f"{archive}: {name}: manifest {entry.digest} is not in the archive")
        manifest = Manifest.from_bytes(store.blobs.read_bytes(entry.digest))
        for blob in (manifest.config, *manifest.layers):
            if not store.blobs.has(blob.digest):
                raise StoreError(f"{archive}: {name}: blob {blob.digest} is not in the archive")
        store.tag(ref, entry.model_copy(update={"annotations": None}))
        loaded.append((ref, entry.digest))
    return loaded


def _keep_referrer(store: Store, archive: Path, entry: Descriptor) -> None:
    """An untagged entry ``save`` wrote for a referrer: kept once its blobs are all here."""
    from ocillm.trust.artifacts import ANN_SUBJECT

    subject = entry.annotation(ANN_SUBJECT)
    if not subject or not store.blobs.has(entry.digest):
        return
    manifest = Manifest.from_bytes(store.blobs.read_bytes(entry.digest))
    for blob in (manifest.config, *manifest.layers):
        if not store.blobs.has(blob.digest):
            raise StoreError(f"{archive}: referrer {entry.digest}: blob {blob.digest} is missing")
    store.add_untagged(entry.model_copy(update={"annotations": {ANN_SUBJECT: subject}}))


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(MiB):
        yield chunk


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > MAX_INDEX:
        raise ArchiveError(f"{member.name} is too large ({member.size} bytes)")
    source = tar.extractfile(member)
    assert source is not None
    return source.read()


def _info(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = _info(name, 0, 0o755)
    info.type = tarfile.DIRTYPE
    tar.addfile(info)

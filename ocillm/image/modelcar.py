"""The modelcar: a runnable OCI image of a ModelPack artifact, linked with it in one index.

containerd mounts only runnable images as volumes, and KServe's modelcars expect files under
``/models/``; ModelPack artifacts are neither. From a ModelPack manifest in the store this
writes, for each platform, an image whose layers unpack to::

    /models/model.gguf                 one layer per weight file (model, projector, adapter, draft)
    /models/template.gotmpl, system.txt, params.json, messages.json, LICENSE    (one layer)
    /models/oci-layout, index.json     /models is also an OCI image layout holding the artifact:
    /models/blobs/sha256/<manifest>    its manifest and config as files,
    /models/blobs/sha256/<layer>       and each layer a relative symlink to the file above

so ``ocillm serve --read-only --models /models`` serves a mounted modelcar as it is, and an
image index whose entries are those images (``platform``) and the artifact (``artifactType``,
platform ``unknown/unknown`` so no runtime ever picks it, as buildx marks attestations).

A weight layer depends only on its file's digest, path and mtime; a small cache maps those to the
tar's digest, so a rebuild of an unchanged GGUF writes no new tar.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ocillm.errors import BuildError, NotFound
from ocillm.image.content import WEIGHT_ROLES
from ocillm.image.formats import MODELPACK, detect_format
from ocillm.image.tarlayer import TarLayer
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import digest_hex
from ocillm.oci.models import Descriptor, Index, Manifest, canonical_json
from ocillm.oci.reference import Reference
from ocillm.progress import Event, Reporter, silent
from ocillm.store import Store
from ocillm.store.locks import atomic_write, file_lock

MODELS_DIR = "models"
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")
ANN_ARTIFACT = "io.ocillm.modelpack.manifest"  # on each runnable image: the artifact it carries
ANN_FORM = "io.ocillm.form"  # on index entries: "modelcar" or "modelpack"
_CACHE_LIMIT = 1024


@dataclass(frozen=True)
class Modelcar:
    """What :func:`write_modelcar` stored: the index, its images, and what it wrote anew."""

    index: Descriptor
    images: list[Descriptor]
    artifact: Descriptor
    layers: list[Descriptor]
    new_bytes: int  # bytes of blobs this call wrote (0 when every layer was already there)


def parse_platform(text: str) -> dict[str, str]:
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise BuildError(f"platform {text!r}: expected OS/ARCH or OS/ARCH/VARIANT (linux/amd64)")
    platform = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


def write_modelcar(
    store: Store,
    artifact: Descriptor,
    names: Sequence[Reference],
    *,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    source_date_epoch: int | None = None,
    report: Reporter = silent,
) -> Modelcar:
    """Store the modelcar images and the index of ``artifact`` (a ModelPack manifest in the
    store); ``names`` go into the embedded layout's ``index.json``. Tags nothing."""
    manifest = store.manifest(artifact)
    if artifact.media_type in mt.INDEX_TYPES or detect_format(manifest) != MODELPACK:
        raise BuildError(
            "--modelcar needs a ModelPack image (the default format, not --format ollama)"
        )
    mtime = source_date_epoch or 0
    with store.writing():
        written: list[int] = []  # sizes of the layers this call wrote anew
        layers = [
            _weight_layer(store, layer, mtime, report, written)
            for layer in _weights(manifest.layers)
        ]
        meta = _meta_layer(store, artifact, manifest, names, mtime)
        layers.append(meta)
        images = [
            _image(store, artifact, layers, parse_platform(p), source_date_epoch) for p in platforms
        ]
        index = Index(
            manifests=[
                *images,
                Descriptor(
                    media_type=artifact.media_type or mt.OCI_MANIFEST,
                    digest=artifact.digest,
                    size=artifact.size,
                    artifact_type=mt.MODELPACK_ARTIFACT,
                    annotations={ANN_FORM: "modelpack"},
                    platform={"architecture": "unknown", "os": "unknown"},
                ),
            ]
        )
        data = canonical_json(index.wire())
        digest = store.blobs.put_bytes(data)
    desc = Descriptor(media_type=mt.OCI_INDEX, digest=digest, size=len(data))
    report(Event(f"modelcar index {digest}", digest=digest))
    return Modelcar(desc, images, artifact, layers, sum(written) + meta.size)


def modelpack_entry(index: Index) -> Descriptor | None:
    """The ModelPack artifact among an index's entries (what ocillm reads of a modelcar index)."""
    for entry in index.manifests:
        if entry.artifact_type == mt.MODELPACK_ARTIFACT:
            return entry
    return None


def _weights(layers: Sequence[Descriptor]) -> list[Descriptor]:
    return [layer for layer in layers if _is_weight(layer)]


def _is_weight(layer: Descriptor) -> bool:
    role = layer.annotation(mt.ANN_ROLE)
    if role is not None:
        return role in {r.value for r in WEIGHT_ROLES}
    return layer.media_type == mt.MODELPACK_WEIGHT


def _filepath(layer: Descriptor) -> str:
    name = layer.annotation(mt.ANN_FILEPATH) or layer.annotation(mt.ANN_TITLE)
    if not name:
        role = layer.annotation(mt.ANN_ROLE) or "file"
        name = f"{role}-{digest_hex(layer.digest)[:12]}"
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise BuildError(f"layer {layer.digest}: file path {name!r} leaves /models")
    return "/".join(parts)


def _weight_layer(
    store: Store, layer: Descriptor, mtime: int, report: Reporter, written: list[int]
) -> Descriptor:
    path = _filepath(layer)
    key = f"{layer.digest}:{path}:{mtime}"
    cache = _LayerCache(store)
    hit = cache.get(key)
    if hit is not None and store.blobs.has(hit[0]):
        report(Event(f"using existing layer {hit[0]}", digest=hit[0], total=hit[1]))
        return _layer(*hit)
    if not store.blobs.has(layer.digest):
        raise NotFound(f"blob {layer.digest} ({path}) is missing from the store")
    report(Event(f"writing tar layer for {path}", total=layer.size, completed=0))
    tar = TarLayer(store.blobs, mtime=mtime)
    try:
        tar.directory(MODELS_DIR)
        tar.add_file(f"{MODELS_DIR}/{path}", store.blobs.path(layer.digest))
    except BaseException:
        tar.discard()
        raise
    digest, size = tar.commit()
    cache.put(key, digest, size)
    written.append(size)
    report(Event(f"creating new layer {digest}", digest=digest, total=size, completed=size))
    return _layer(digest, size)


def _meta_layer(
    store: Store,
    artifact: Descriptor,
    manifest: Manifest,
    names: Sequence[Reference],
    mtime: int,
) -> Descriptor:
    """The small files, and ``/models`` as an OCI layout holding the artifact."""
    entries: dict[str, tuple[str, bytes | str]] = {}  # tar name -> (kind, bytes or link)
    blob_dir = f"{MODELS_DIR}/blobs/sha256"
    for layer in manifest.layers:
        path = _filepath(layer)
        if not _is_weight(layer):
            entries[f"{MODELS_DIR}/{path}"] = ("file", store.blobs.read_bytes(layer.digest))
        link = f"{blob_dir}/{digest_hex(layer.digest)}"
        entries.setdefault(link, ("link", "../../" + path))
    for digest in (artifact.digest, manifest.config.digest):
        entries[f"{blob_dir}/{digest_hex(digest)}"] = ("file", store.blobs.read_bytes(digest))
    layout_index = Index(
        manifests=[
            artifact.model_copy(
                update={"annotations": {mt.ANN_REF_NAME: str(ref)}, "platform": None}
            )
            for ref in names
        ]
    )
    entries[f"{MODELS_DIR}/index.json"] = ("file", canonical_json(layout_index.wire()))
    entries[f"{MODELS_DIR}/oci-layout"] = ("file", canonical_json({"imageLayoutVersion": "1.0.0"}))
    tar = TarLayer(store.blobs, mtime=mtime)
    try:
        dirs = {MODELS_DIR, f"{MODELS_DIR}/blobs", blob_dir}
        for name in entries:
            parent = name.rpartition("/")[0]
            while parent and parent not in dirs:
                dirs.add(parent)
                parent = parent.rpartition("/")[0]
        for name in sorted([*dirs, *entries]):
            if name in dirs:
                tar.directory(name)
                continue
            kind, value = entries[name]
            if kind == "link":
                assert isinstance(value, str)
                tar.symlink(name, value)
            else:
                assert isinstance(value, bytes)
                tar.add_bytes(name, value)
    except BaseException:
        tar.discard()
        raise
    return _layer(*tar.commit())


def _layer(digest: str, size: int) -> Descriptor:
    return Descriptor(media_type=mt.OCI_LAYER, digest=digest, size=size)


def _image(
    store: Store,
    artifact: Descriptor,
    layers: list[Descriptor],
    platform: dict[str, str],
    source_date_epoch: int | None,
) -> Descriptor:
    config: dict[str, Any] = {}
    if source_date_epoch is not None:
        from datetime import datetime, timezone

        stamp = datetime.fromtimestamp(source_date_epoch, timezone.utc)
        config["created"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    config.update(platform)
    config["config"] = {
        "Labels": {ANN_ARTIFACT: artifact.digest},
        "WorkingDir": "/" + MODELS_DIR,
    }
    config["rootfs"] = {"type": "layers", "diff_ids": [layer.digest for layer in layers]}
    config["history"] = [{"created_by": "ocillm build --modelcar"} for _ in layers]
    config_bytes = canonical_json(config)
    config_digest = store.blobs.put_bytes(config_bytes)
    manifest = Manifest(
        schema_version=2,
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(
            media_type=mt.OCI_IMAGE_CONFIG, digest=config_digest, size=len(config_bytes)
        ),
        layers=layers,
        annotations={ANN_ARTIFACT: artifact.digest},
    )
    desc = store.put_manifest(manifest)
    return desc.model_copy(update={"platform": platform, "annotations": {ANN_FORM: "modelcar"}})


class _LayerCache:
    """``cache/modelcar.json``: (GGUF digest, path, mtime) -> tar layer; a lost entry costs a
    rewrite, never a wrong layer (the tar's digest is checked to exist before use)."""

    def __init__(self, store: Store) -> None:
        self.path = store.root / "cache" / "modelcar.json"
        self.lock = store.root / "locks" / "modelcar.lock"

    def _read(self) -> dict[str, list[Any]]:
        try:
            value = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def get(self, key: str) -> tuple[str, int] | None:
        hit = self._read().get(key)
        if isinstance(hit, list) and len(hit) == 2:
            return str(hit[0]), int(hit[1])
        return None

    def put(self, key: str, digest: str, size: int) -> None:
        with file_lock(self.lock):
            entries = self._read()
            entries[key] = [digest, size]
            while len(entries) > _CACHE_LIMIT:
                entries.pop(next(iter(entries)))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, canonical_json(entries))

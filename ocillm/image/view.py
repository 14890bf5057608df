"""An image in the store, opened: its manifest, config and the text of its small pieces."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ocillm.errors import StoreError
from ocillm.image.content import ImageContent, Role
from ocillm.image.formats import parse_config, read_content
from ocillm.oci.models import Descriptor, Manifest
from ocillm.oci.reference import Reference
from ocillm.store import Store


@dataclass
class ImageView:
    store: Store
    reference: Reference
    descriptor: Descriptor
    manifest: Manifest
    config: dict[str, Any]
    content: ImageContent
    modified: datetime | None = None

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        """Bytes of the config and every layer (what `list` shows, as Ollama counts it)."""
        return self.manifest.config.size + sum(layer.size for layer in self.manifest.layers)

    def text(self, role: Role) -> str | None:
        piece = self.content.first(role)
        if piece is None:
            return None
        return self.store.blobs.read_bytes(piece.digest).decode("utf-8", errors="replace")

    @property
    def template(self) -> str | None:
        return self.text(Role.TEMPLATE)

    @property
    def chat_template(self) -> str | None:
        return self.text(Role.CHAT_TEMPLATE)

    @property
    def system(self) -> str | None:
        return self.text(Role.SYSTEM)

    @property
    def licenses(self) -> list[str]:
        return [
            self.store.blobs.read_bytes(p.digest).decode("utf-8", errors="replace")
            for p in self.content.all(Role.LICENSE)
        ]

    @property
    def params(self) -> dict[str, Any]:
        raw = self.text(Role.PARAMS)
        if not raw:
            return {}
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise StoreError(f"{self.reference}: the params layer is not a JSON object")
        return value

    @property
    def messages(self) -> list[dict[str, Any]]:
        raw = self.text(Role.MESSAGES)
        if not raw:
            return []
        value = json.loads(raw)
        if not isinstance(value, list):
            raise StoreError(f"{self.reference}: the messages layer is not a JSON array")
        return [m for m in value if isinstance(m, dict)]

    def path(self, role: Role) -> Path | None:
        piece = self.content.first(role)
        return None if piece is None else self.store.blobs.path(piece.digest)

    @property
    def model_path(self) -> Path:
        path = self.path(Role.MODEL)
        assert path is not None  # read_content guarantees a model layer
        return path

    def paths(self, role: Role) -> list[Path]:
        return [self.store.blobs.path(p.digest) for p in self.content.all(role)]


def open_image(store: Store, ref: Reference) -> ImageView:
    desc = store.resolve(ref)
    manifest = store.manifest(desc)
    config = parse_config(store.blobs.read_bytes(manifest.config.digest))
    modified = None
    for record in store.images():
        if record.descriptor.digest == desc.digest and str(record.reference) == str(ref):
            modified = record.modified
    return ImageView(store, ref, desc, manifest, config, read_content(manifest, config), modified)

"""Descriptors, manifests and the image index as pydantic models (wire field names kept)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ocillm.oci.digest import Digest, sha256_digest


class Descriptor(BaseModel):
    """An OCI content descriptor. Unknown fields (Ollama's ``from``, ``name``) are kept."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    media_type: str = Field(alias="mediaType")
    digest: Digest
    size: int = Field(ge=0)
    annotations: dict[str, str] | None = None
    artifact_type: str | None = Field(default=None, alias="artifactType")
    urls: list[str] | None = None
    data: str | None = None
    platform: dict[str, str] | None = None  # index entries of runnable images (os, architecture)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)

    def annotation(self, key: str) -> str | None:
        return (self.annotations or {}).get(key)


class Manifest(BaseModel):
    """An OCI image manifest or a Docker schema-2 manifest (same shape)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    schema_version: int = Field(default=2, alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    artifact_type: str | None = Field(default=None, alias="artifactType")
    config: Descriptor
    layers: list[Descriptor] = Field(default_factory=list)
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)

    def to_bytes(self) -> bytes:
        """Canonical bytes: the same manifest always serialises the same way."""
        return canonical_json(self.wire())

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        return cls.model_validate_json(data)


class Index(BaseModel):
    """``index.json`` of an OCI image layout, or a registry image index."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    schema_version: int = Field(default=2, alias="schemaVersion")
    media_type: str | None = Field(
        default="application/vnd.oci.image.index.v1+json", alias="mediaType"
    )
    manifests: list[Descriptor] = Field(default_factory=list)
    annotations: dict[str, str] | None = None

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def canonical_json(value: Any) -> bytes:
    """Compact JSON with keys in insertion order; what ocillm hashes and stores."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def descriptor_for(data: bytes, media_type: str, **annotations: str) -> Descriptor:
    return Descriptor(
        media_type=media_type,
        digest=sha256_digest(data),
        size=len(data),
        annotations=annotations or None,
    )

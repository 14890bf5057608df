"""Ollama's store layout, as ``manifest/paths.go`` writes it.

``<root>/manifests/<host>/<namespace>/<model>/<tag>`` holds a manifest byte for byte (its
sha256 is the model's ID); ``<root>/blobs/sha256-<hex>`` holds every blob. Exactly four levels
under ``manifests/``: Ollama globs ``manifests/*/*/*/*``, so a deeper repository cannot be written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ocillm.errors import UsageError
from ocillm.oci.digest import digest_hex
from ocillm.oci.reference import DEFAULT_REGISTRY, Reference, parse_reference


@dataclass(frozen=True)
class OllamaManifest:
    reference: Reference
    path: Path


class OllamaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifests_dir = root / "manifests"
        self.blobs_dir = root / "blobs"

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / f"sha256-{digest_hex(digest)}"

    def manifest_path(self, ref: Reference) -> Path:
        parts = ref.repository.split("/")
        if len(parts) != 2 or ref.tag is None:
            raise UsageError(
                f"{ref}: Ollama names are host/namespace/model:tag; give the image such a "
                f"name first (`ocillm tag {ref} {ref.registry}/library/{parts[-1]}:"
                f"{ref.tag or 'latest'}`)"
            )
        return self.manifests_dir / ref.registry / parts[0] / parts[1] / ref.tag

    def manifests(self) -> Iterator[OllamaManifest]:
        """Every manifest file Ollama would list (``manifests/*/*/*/*``), names lowercased
        (Ollama matches names case-insensitively; OCI names are lowercase)."""
        if not self.manifests_dir.is_dir():
            return
        for path in sorted(self.manifests_dir.glob("*/*/*/*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            host, ns, model, tag = path.relative_to(self.manifests_dir).parts
            text = f"{host}/{ns.lower()}/{model.lower()}:{tag}"
            yield OllamaManifest(parse_reference(text, default_registry=DEFAULT_REGISTRY), path)

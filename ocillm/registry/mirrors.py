"""Registry mirrors for pulls: try each mirror of a registry in order, then the registry itself.

``OCILLM_REGISTRY_MIRRORS`` (``origin=URL,origin=URL,...``; an origin named twice has two mirrors,
tried in the order written) and ``$OCILLM_HOME/registries.json``
(``{"mirrors": {"registry.ollama.ai": ["https://harbor.local/v2/ollama-proxy"]}}``) say where.
A mirror URL is ``[http[s]://]host[:port][/v2][/prefix]``: ``prefix`` goes in front of the
repository (Harbor's proxy-cache projects), ``http://`` means plain HTTP.

A mirror gets one attempt per request (a mirror that is down must not cost the retries' backoff);
the origin keeps the configured retries. Whatever serves a blob, its digest is checked against
the manifest, so a mirror can make a pull slower but never wrong; a pull by tag trusts the
mirror's answer for the tag (as Docker and containerd do) — pin a digest where that matters.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from ocillm.errors import DigestMismatch, RegistryError, UsageError
from ocillm.oci.models import Descriptor
from ocillm.oci.reference import Reference
from ocillm.registry.client import RegistryClient
from ocillm.registry.download import DownloadStats, fetch_blob
from ocillm.registry.options import TransferOptions
from ocillm.registry.progress import BlobProgress
from ocillm.store import Store

T = TypeVar("T")
_FALLBACK = (RegistryError, DigestMismatch)


@dataclass(frozen=True)
class Mirror:
    host: str
    prefix: str = ""
    plain_http: bool = False

    @classmethod
    def parse(cls, url: str) -> Mirror:
        text = url.strip()
        plain = text.startswith("http://")
        if "://" not in text:
            text = "https://" + text
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"registry mirror {url!r}: expected [https://]host[:port][/prefix]")
        path = parts.path.strip("/")
        if path == "v2" or path.startswith("v2/"):
            path = path[2:].strip("/")
        return cls(parts.netloc, path, plain)

    def reference(self, ref: Reference) -> Reference:
        """``ref`` as this mirror names it."""
        repo = f"{self.prefix}/{ref.repository}" if self.prefix else ref.repository
        return Reference(self.host, repo, ref.tag, ref.digest)


Mirrors = Mapping[str, tuple[Mirror, ...]]


def parse_mirrors(text: str) -> dict[str, tuple[Mirror, ...]]:
    """``origin=url,origin=url``: every origin's mirrors, in the order written."""
    found: dict[str, list[Mirror]] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        origin, sep, url = item.partition("=")
        if not sep or not origin.strip() or not url.strip():
            raise UsageError(
                f"OCILLM_REGISTRY_MIRRORS: {item!r}: expected registry=mirror-url "
                "(e.g. registry.ollama.ai=https://harbor.local/v2/ollama-proxy)"
            )
        found.setdefault(origin.strip(), []).append(Mirror.parse(url))
    return {k: tuple(v) for k, v in found.items()}


def load_mirrors(text: str, file: Path | None) -> dict[str, tuple[Mirror, ...]]:
    """The variable's mirrors, then (for the same origin) those of ``registries.json``."""
    mirrors = {k: list(v) for k, v in parse_mirrors(text).items()}
    if file is not None and file.is_file():
        try:
            listed = json.loads(file.read_text()).get("mirrors") or {}
            if not isinstance(listed, dict):
                raise ValueError("mirrors must be an object")
            for origin, urls in listed.items():
                urls = [urls] if isinstance(urls, str) else list(urls)
                mirrors.setdefault(str(origin), []).extend(Mirror.parse(str(u)) for u in urls)
        except (ValueError, TypeError, AttributeError) as e:
            raise UsageError(f"{file}: {e}") from None
    return {k: tuple(v) for k, v in mirrors.items()}


class Sources:
    """Where a pull of ``ref`` reads from: its registry's mirrors in order, then the origin."""

    def __init__(self, ref: Reference, options: TransferOptions) -> None:
        self.ref = ref
        self.options = options
        mirrors = options.mirrors.get(ref.registry, ())
        quick = replace(options, retries=1)
        self.clients: list[RegistryClient] = [
            RegistryClient(m.reference(ref), replace(quick, plain_http=m.plain_http))
            for m in mirrors
        ]
        self.origin = RegistryClient(ref, options, actions="pull")
        self.clients.append(self.origin)
        self.preferred = self.origin if not mirrors else self.clients[0]
        self.failures: list[str] = []

    def first(self, fetch: Callable[[RegistryClient], T]) -> tuple[RegistryClient, T]:
        """The first source whose ``fetch`` succeeds (the origin's error if none does); it is
        then the one blobs are asked from first."""
        for client in self.clients:
            try:
                client.authorize()
                result = fetch(client)
            except _FALLBACK as e:
                if client is self.origin:
                    raise
                self.failures.append(f"{client.registry}: {e}")
                continue
            self.preferred = client
            return client, result
        raise AssertionError("unreachable: the origin is always last")

    def fetch_blob(
        self, store: Store, desc: Descriptor, progress: BlobProgress, stats: DownloadStats
    ) -> None:
        """``desc`` into ``store`` from the preferred source, else the others in order."""
        if store.blobs.has(desc.digest):
            fetch_blob(self.preferred, store, desc, self.options, progress, stats)  # no I/O
            return
        order = [self.preferred, *(c for c in self.clients if c is not self.preferred)]
        if self.preferred is not self.origin:
            order = [*(c for c in order if c is not self.origin), self.origin]
        for client in order:
            progress.host = client.registry
            try:
                fetch_blob(client, store, desc, client.options, progress, stats)
                return
            except _FALLBACK as e:
                if client is order[-1]:
                    raise
                self.failures.append(f"{client.registry}: blob {desc.digest}: {e}")

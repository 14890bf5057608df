"""Image references: Docker/OCI grammar with Ollama's short-name expansion.

``[host[:port]/]path[:tag][@sha256:<hex>]`` with any path depth. The first component is a
host when it contains a ``.`` or a ``:`` or is ``localhost`` (Docker's rule); otherwise the
reference lives on the default registry and a one-component path gains Ollama's ``library/``
namespace: ``tiny`` is ``registry.ollama.ai/library/tiny:latest``.

The default registry is a parameter (``registry.ollama.ai`` when not given): callers pass
``Settings.default_registry`` (``OCILLM_DEFAULT_REGISTRY``); this vocabulary layer never reads
the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocillm.errors import InvalidReference
from ocillm.oci.digest import is_digest

DEFAULT_REGISTRY = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$"
)
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_NAME = 255


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True, order=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, *, default_registry: str = DEFAULT_REGISTRY) -> Reference:
        return parse_reference(text, default_registry=default_registry)

    @property
    def name(self) -> str:
        """``host/path`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def target(self) -> str:
        """What follows ``/manifests/`` in a registry URL: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def display(self, *, default_registry: str = DEFAULT_REGISTRY) -> str:
        """The shortest form that parses back to this reference (as ``ollama list`` shows)."""
        text = str(self)
        if self.registry == default_registry:
            text = text[len(self.registry) + 1 :]
            if text.startswith(DEFAULT_NAMESPACE + "/") and text.count("/") == 1:
                text = text[len(DEFAULT_NAMESPACE) + 1 :]
        return text


def parse_reference(text: str, *, default_registry: str = DEFAULT_REGISTRY) -> Reference:
    raw = text
    s = text.strip()
    if not s:
        raise InvalidReference(raw, "a reference cannot be empty")
    if "://" in s:
        raise InvalidReference(
            raw, "no URL scheme: write host/path:tag (use --plain-http for HTTP)"
        )
    digest: str | None = None
    if "@" in s:
        s, digest = s.rsplit("@", 1)
        if not is_digest(digest):
            raise InvalidReference(
                raw, "a digest must be sha256: followed by 64 lowercase hex digits"
            )
    tag: str | None = None
    last_colon, last_slash = s.rfind(":"), s.rfind("/")
    if last_colon > last_slash:
        s, tag = s[:last_colon], s[last_colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReference(
                raw, "a tag is 1-128 of [A-Za-z0-9_.-] and cannot start with '.' or '-'"
            )
    parts = s.split("/")
    if len(parts) > 1 and _looks_like_host(parts[0]):
        registry, path = parts[0], parts[1:]
        if not _HOST_RE.match(registry):
            raise InvalidReference(raw, f"invalid registry host {registry!r}")
    else:
        registry = default_registry
        path = parts
        if len(path) == 1:
            path = [DEFAULT_NAMESPACE, *path]
    for component in path:
        if not component:
            raise InvalidReference(raw, "empty path component (a doubled or trailing '/')")
        if component.lower() == component and not _COMPONENT_RE.match(component):
            raise InvalidReference(
                raw,
                f"path component {component!r} must be lowercase letters and digits, "
                "separated by '.', '_', '__' or '-'",
            )
        if component.lower() != component:
            raise InvalidReference(raw, "repository names must be lowercase")
    repository = "/".join(path)
    if len(registry) + 1 + len(repository) > MAX_NAME:
        raise InvalidReference(raw, f"the name is longer than {MAX_NAME} characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)

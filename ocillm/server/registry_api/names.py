"""How a ``/v2/<name>/...`` name maps to a reference in the store, and back.

A fully qualified reference appears with its host as the first component:
``ghcr.io/acme/bot:1`` is ``/v2/ghcr.io/acme/bot/manifests/1``. A port's ``:`` cannot appear
in a repository name that Docker clients accept, so it is written ``_``:
``127.0.0.1:5000/team/tiny:1`` is ``/v2/127.0.0.1_5000/team/tiny/manifests/1`` (a literal
``:`` is read too). A name whose first component is not a host is a short name on the default
registry, as on the command line: ``/v2/library/tiny`` is ``registry.ollama.ai/library/tiny``,
which is what ``ollama pull HOST:PORT/library/tiny`` asks for. In mirror mode
(``--mirror-of``) a short name lives on the upstream instead.
"""

from __future__ import annotations

import re

from ocillm.errors import InvalidReference
from ocillm.oci.reference import Reference, parse_reference

_PORT = re.compile(r"^(?P<host>.+)_(?P<port>[0-9]{1,5})$")


def _host(component: str) -> str | None:
    """The registry host a first component names, or None when it is a path component."""
    match = _PORT.match(component)
    if match and ("." in match["host"] or match["host"] == "localhost"):
        return f"{match['host']}:{match['port']}"
    if "." in component or ":" in component or component == "localhost":
        return component
    return None


def to_reference(
    name: str,
    *,
    default_registry: str,
    upstream: str | None = None,
    upstream_prefix: str = "",
) -> Reference:
    """The store reference (no tag yet) that the URL name ``name`` means."""
    parts = name.strip("/").split("/")
    host = _host(parts[0]) if len(parts) > 1 else None
    if host is not None:
        ref = parse_reference("/".join([host, *parts[1:]]), default_registry=default_registry)
    elif upstream is not None:
        repo = "/".join([upstream_prefix, *parts]) if upstream_prefix else "/".join(parts)
        ref = parse_reference(f"{upstream}/{repo}", default_registry=default_registry)
        if ref.repository != repo:
            raise InvalidReference(name, "not a repository name")
    else:
        ref = parse_reference("/".join(parts), default_registry=default_registry)
    return Reference(ref.registry, ref.repository)


def to_name(ref: Reference) -> str:
    """The URL name of ``ref`` (what ``_catalog`` lists)."""
    return f"{ref.registry.replace(':', '_')}/{ref.repository}"

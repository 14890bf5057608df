"""Helpers the commands share: the store, references, labels."""

from __future__ import annotations

from ocillm.config import settings
from ocillm.errors import UsageError
from ocillm.oci.reference import Reference, parse_reference
from ocillm.store import Store


def open_store() -> Store:
    return Store.open(settings().models)


def ref(text: str) -> Reference:
    return parse_reference(text)


def parse_labels(values: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--label {item!r}: expected KEY=VALUE")
        labels[key.strip()] = value
    return labels

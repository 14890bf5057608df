"""Helpers the commands share: the settings, the store (which parses and shows names), labels."""

from __future__ import annotations

import typer

from ocillm.config import Settings
from ocillm.errors import UsageError
from ocillm.store import Store


def cli_settings(ctx: typer.Context) -> Settings:
    """The settings ``main`` read once at start, kept on the root context as ``obj``."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        # Invoked without ``main`` (typer's test runner): this is the start, read them now.
        root.obj = Settings.from_env()
    return root.obj


def open_store(ctx: typer.Context) -> Store:
    cfg = cli_settings(ctx)
    return Store.open(cfg.models, default_registry=cfg.default_registry)


def parse_labels(values: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--label {item!r}: expected KEY=VALUE")
        labels[key.strip()] = value
    return labels

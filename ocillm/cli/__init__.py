"""The ``ocillm`` command line."""

from ocillm.cli.app import app, main

__all__ = ["app", "main"]

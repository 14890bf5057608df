"""The serve extra: what ``pip install 'ocillm[serve]'`` adds, and the one line saying so.

The base install builds, lints, pushes and pulls without llama.cpp, FastAPI or uvicorn. The
commands that serve or talk to the daemon (``serve``, ``run``, ``ps``, ``stop``) and
``build --quantize`` check for what they need first, so a base install answers them with the
command to run instead of a traceback.
"""

from __future__ import annotations

import importlib.util

from ocillm.errors import OcillmError

INSTALL = "pip install 'ocillm[serve]'"

#: Modules (import names) of the serve extra that the daemon and its clients import.
SERVE_MODULES = ("llama_cpp", "fastapi", "uvicorn", "httpx", "prometheus_client")


class MissingExtra(OcillmError):
    """A command needs the serve extra and this install does not have it."""

    def __init__(self, command: str, module: str) -> None:
        self.command = command
        self.module = module
        super().__init__(f"{command} needs the serve extra ({module} is not installed): {INSTALL}")


def _importable(name: str) -> bool:
    # find_spec locates the module without importing it (llama_cpp loads a 20 MB library).
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_serve_extra(command: str, modules: tuple[str, ...] = SERVE_MODULES) -> None:
    """Raise :class:`MissingExtra` naming ``command`` unless every one of ``modules`` is there."""
    for name in modules:
        if not _importable(name):
            raise MissingExtra(command, name)

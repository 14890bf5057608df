"""The Modelfile front end: parse, validate, lint and render Ollama-style Modelfiles.

The grammar lives in ``ocillm/grammar/modelfile.lark``; docs/modelfile.md is the user reference.
"""

from __future__ import annotations

from ocillm.modelfile.model import Command, Message, Modelfile
from ocillm.modelfile.params import DEPRECATED_PARAMETERS, VALID_PARAMETERS
from ocillm.modelfile.parser import parse_commands
from ocillm.modelfile.paths import blob_digest, looks_like_path, resolve_path
from ocillm.modelfile.render import format_commands, render_modelfile
from ocillm.modelfile.validate import lint_modelfile, parse_modelfile

__all__ = [
    "DEPRECATED_PARAMETERS",
    "VALID_PARAMETERS",
    "Command",
    "Message",
    "Modelfile",
    "blob_digest",
    "format_commands",
    "lint_modelfile",
    "looks_like_path",
    "parse_commands",
    "parse_modelfile",
    "render_modelfile",
    "resolve_path",
]

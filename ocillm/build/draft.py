"""DRAFT is carried, not used: the warning ``build``, ``lint`` and ``show`` print about it.

An image keeps its DRAFT model (a layer of its own, as Ollama stores it), but ocillm's runners do
not decode with a draft model yet (no speculative decoding), so saying nothing would make the
instruction look like it works.
"""

from __future__ import annotations

from pathlib import Path

from ocillm.errors import ModelfileError


def draft_warning(path: str | None = None) -> str:
    named = f"DRAFT {path}" if path else "DRAFT"
    return (
        f"{named}: the draft model is stored in the image but not used: ocillm's runners do not "
        "decode with a draft model yet (no speculative decoding)"
    )


def modelfile_draft(path: Path) -> str | None:
    """The DRAFT a Modelfile names (the last one wins), or None; None too if it does not parse
    (its errors are reported elsewhere)."""
    from ocillm.modelfile import parse_commands

    try:
        commands = parse_commands(path.read_bytes(), filename=str(path))
    except (OSError, ModelfileError):
        return None
    drafts = [c.args for c in commands if c.name == "draft"]
    return drafts[-1] if drafts else None

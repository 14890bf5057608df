"""``ocillm lint``: the syntax and meaning of a Modelfile, without building.

Lint runs where the weights may not be yet (a CI job before the GGUF is fetched): a FROM,
ADAPTER or DRAFT file that is not on disk is a warning, not an error (``--strict`` makes
warnings fail). A store blob path (``…/blobs/sha256-<hex>``) counts as present when the local
store holds that blob, as the build would use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ocillm.errors import ModelfileError, TemplateError
from ocillm.modelfile import (
    blob_digest,
    lint_modelfile,
    looks_like_path,
    parse_commands,
    resolve_path,
)

_FILE_INSTRUCTIONS = {"model": "FROM", "adapter": "ADAPTER", "draft": "DRAFT"}


@dataclass
class LintResult:
    errors: list[ModelfileError] = field(default_factory=list)
    warnings: list[ModelfileError] = field(default_factory=list)
    """Problems that do not stop a lint (missing weight files); each names its instruction."""

    def failed(self, *, strict: bool = False) -> bool:
        return bool(self.errors or (strict and self.warnings))


def lint_file(
    path: Path,
    context: Path | None = None,
    *,
    has_blob: Callable[[str], bool] | None = None,
) -> LintResult:
    """Lint ``path``; relative files resolve against ``context`` (default: its folder).
    ``has_blob(digest)`` says whether the local store holds a blob (None: it holds none)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return LintResult([ModelfileError(f"cannot read: {e.strerror or e}", filename=str(path))])
    name = str(path)
    result = LintResult(lint_modelfile(data, filename=name))
    errors = result.errors
    if any(e.line and "unexpected" in e.message for e in errors):
        return result
    try:
        commands = parse_commands(data, filename=name)
    except ModelfileError:
        return result
    base = context or path.parent
    for c in commands:
        if c.name in _FILE_INSTRUCTIONS and looks_like_path(c.args):
            if resolve_path(c.args, base).exists():
                continue
            digest = blob_digest(c.args)
            if digest and has_blob is not None and has_blob(digest):
                continue
            where = " or in the local store" if digest else ""
            result.warnings.append(
                ModelfileError(
                    f"{_FILE_INSTRUCTIONS[c.name]} {c.args}: no such file{where}",
                    filename=name,
                    line=c.line,
                    column=c.column,
                )
            )
        if c.name == "template":
            from ocillm.template import parse_template

            try:
                parse_template(c.args, name="TEMPLATE")
            except TemplateError as e:
                errors.append(
                    ModelfileError(
                        f"invalid template: {e.message}"
                        + (f" (template line {e.line}, column {e.column})" if e.line else ""),
                        filename=name,
                        line=c.line,
                        column=c.column,
                    )
                )
    errors.sort(key=lambda e: (e.line, e.column))
    return result

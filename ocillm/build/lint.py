"""``ocillm lint``: every problem a build would hit, without building."""

from __future__ import annotations

from pathlib import Path

from ocillm.errors import ModelfileError, TemplateError
from ocillm.modelfile import lint_modelfile, looks_like_path, parse_commands, resolve_path


def lint_file(path: Path, context: Path | None = None) -> list[ModelfileError]:
    try:
        data = path.read_bytes()
    except OSError as e:
        return [ModelfileError(f"cannot read: {e.strerror or e}", filename=str(path))]
    name = str(path)
    errors = lint_modelfile(data, filename=name)
    if any(e.line and "unexpected" in e.message for e in errors):
        return errors
    try:
        commands = parse_commands(data, filename=name)
    except ModelfileError:
        return errors
    base = context or path.parent
    for c in commands:
        if c.name in ("model", "adapter", "draft") and looks_like_path(c.args):
            resolved = resolve_path(c.args, base)
            if not resolved.exists():
                errors.append(
                    ModelfileError(
                        f"{c.args}: no such file or directory ({resolved})",
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
    return errors

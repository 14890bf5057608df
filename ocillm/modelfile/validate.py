"""Commands -> Modelfile, with the checks ``ollama create`` makes before it sends a request."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Literal, cast

from ocillm.errors import ModelfileError
from ocillm.modelfile.model import Command, Message, Modelfile
from ocillm.modelfile.params import (
    DEPRECATED_PARAMETERS,
    VALID_PARAMETERS,
    ParamValue,
    convert_parameter,
    normalize_requires,
)
from ocillm.modelfile.parser import MISSING_FROM, parse_source

_SINGLE = ("template", "system", "draft", "renderer", "parser")
_Role = Literal["system", "user", "assistant"]
ErrorFactory = Callable[[str, tuple[int, int]], ModelfileError]


# Options Ollama used to accept; naming them explains the error better than a guess.
_REMOVED = frozenset(
    {"grammar", "numa", "num_gqa", "tfs_z", "rope_frequency_base", "rope_frequency_scale"}
)


def _unknown_hint(name: str) -> str:
    if name in _REMOVED:
        return " (Ollama no longer supports this parameter)"
    if name.lower() in VALID_PARAMETERS:
        return f" (parameter names are case-sensitive: did you mean '{name.lower()}'?)"
    close = difflib.get_close_matches(name, list(VALID_PARAMETERS), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def build(
    commands: list[Command], errors: list[ModelfileError], make_error: ErrorFactory
) -> Modelfile:
    """Fold commands into a Modelfile, appending every validation error to ``errors``."""
    fields: dict[str, object] = {}
    froms: list[str] = []
    adapters: list[str] = []
    licenses: list[str] = []
    messages: list[Message] = []
    params: dict[str, ParamValue] = {}
    warnings: list[str] = []
    for cmd in commands:
        if cmd.name == "model":
            froms.append(cmd.args)
        elif cmd.name == "adapter":
            adapters.append(cmd.args)
        elif cmd.name == "license":
            licenses.append(cmd.args)
        elif cmd.name in _SINGLE:
            fields[cmd.name] = cmd.args  # the last one wins, as in Ollama
        elif cmd.name == "requires":
            version = normalize_requires(cmd.args)
            if version is None:
                errors.append(
                    make_error("requires must be a valid semver (e.g. 0.14.0)", cmd.value_position)
                )
            else:
                fields["requires"] = version
        elif cmd.name == "message":
            role, _, content = cmd.args.partition(": ")
            messages.append(Message(role=cast(_Role, role), content=content))
        elif cmd.name in DEPRECATED_PARAMETERS:
            warnings.append(f"parameter {cmd.name} is deprecated")
        else:
            try:
                value = convert_parameter(cmd.name, cmd.args)
            except ValueError as exc:
                unknown = cmd.name not in VALID_PARAMETERS
                message = str(exc)
                if unknown:
                    message += _unknown_hint(cmd.name)
                elif "#" in cmd.args:
                    message += " (a '#' after a value is part of the value, not a comment)"
                where = cmd.name_position if unknown else cmd.value_position
                errors.append(make_error(message, where))
                continue
            existing = params.get(cmd.name)
            if isinstance(existing, list) and isinstance(value, list):
                existing.extend(value)
            else:
                params[cmd.name] = value
    return Modelfile(
        froms=froms,
        parameters=params,
        adapters=adapters,
        licenses=licenses,
        messages=messages,
        warnings=warnings,
        **fields,
    )


def _analyse(data: bytes | str, filename: str) -> tuple[Modelfile | None, list[ModelfileError]]:
    commands, src = parse_source(data, filename)
    errors: list[ModelfileError] = []
    if not any(c.name == "model" for c in commands):
        errors.append(src.error(MISSING_FROM, None))

    def make_error(message: str, position: tuple[int, int]) -> ModelfileError:
        line, column = position
        return ModelfileError(
            message,
            filename=filename,
            line=line,
            column=column,
            source_line=src.lines.line_text(line),
        )

    modelfile = build(commands, errors, make_error)
    return (None if errors else modelfile), errors


def parse_modelfile(data: bytes | str, filename: str = "Modelfile") -> Modelfile:
    """Parse and validate a Modelfile as ``ollama create`` would; raises the first error.

    Checks: syntax (as :func:`parse_commands`), a FROM line, PARAMETER names and value types,
    REQUIRES as semver. Deprecated parameters are dropped with a warning in ``.warnings``.
    File paths are not checked here (that needs the filesystem; the build does it).
    """
    modelfile, errors = _analyse(data, filename)
    if errors:
        raise errors[0]
    assert modelfile is not None
    return modelfile


def lint_modelfile(data: bytes | str, filename: str = "Modelfile") -> list[ModelfileError]:
    """Every error in a Modelfile: the first syntax error, or else all validation errors."""
    try:
        _, errors = _analyse(data, filename)
    except ModelfileError as exc:
        return [exc]
    return errors

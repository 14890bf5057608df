"""Writing Modelfiles back out, like ``ollama show --modelfile``."""

from __future__ import annotations

import re

from ocillm.errors import ModelfileError
from ocillm.modelfile.model import Command, Modelfile
from ocillm.modelfile.params import format_parameter_value
from ocillm.modelfile.parser import parse_source

_PARAM_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_PLAIN = ("license", "template", "system", "adapter", "renderer", "parser", "requires", "draft")


def go_quote(value: str) -> str:
    """Ollama's ``quote``: only values with a newline or a leading/trailing space are quoted."""
    if "\n" in value or value.startswith(" ") or value.endswith(" "):
        if '"' in value:
            return f'"""{value}"""'
        return f'"{value}"'
    return value


def format_command(cmd: Command) -> str:
    """Ollama's ``Command.String()`` (FROM is never quoted there)."""
    if cmd.name == "model":
        return f"FROM {cmd.args}"
    if cmd.name in _PLAIN:
        return f"{cmd.name.upper()} {go_quote(cmd.args)}"
    if cmd.name == "message":
        role, _, text = cmd.args.partition(": ")
        return f"MESSAGE {role} {go_quote(text)}"
    return f"PARAMETER {cmd.name} {go_quote(cmd.args)}"


def format_commands(commands: list[Command]) -> str:
    """Ollama's ``Modelfile.String()``: one line per command, in order."""
    return "".join(format_command(c) + "\n" for c in commands)


def _reads_back(prefix: str, written: str, value: str) -> bool:
    try:
        commands, _ = parse_source(f"{prefix} {written}\n", "<render>")
    except ModelfileError:
        return False
    if len(commands) != 1:
        return False
    args = commands[0].args
    if commands[0].name == "message":
        args = args.partition(": ")[2]
    return args == value


def quote_value(prefix: str, value: str) -> str:
    """The shortest way to write ``value`` after ``prefix`` that reads back unchanged.

    Ollama's own choice comes first, so ordinary values look exactly as ``ollama show``
    writes them; the other forms fix the cases where Ollama's output would not read back
    (a value starting with a quote, a leading tab, a line ending in quotes, ...).
    Raises ModelfileError for a value no Modelfile can express (one with a character the
    parser drops, such as a control character).
    """
    candidates = [go_quote(value), f'"{value}"', f'"""{value}"""']
    if value == "":
        candidates.insert(0, '""')
    for written in candidates:
        if _reads_back(prefix, written, value):
            return written
    raise ModelfileError(f"{prefix}: this value cannot be written in a Modelfile: {value!r}")


def _line(prefix: str, value: str) -> str:
    return f"{prefix} {quote_value(prefix, value)}\n"


def render_modelfile(m: Modelfile, *, header: str | None = None) -> str:
    """Modelfile text for ``m``, in ``ollama show --modelfile`` order.

    ``header`` (any number of lines) is written first as ``#`` comments, then a blank line.
    ``parse_modelfile(render_modelfile(m)) == m`` for every Modelfile that has a FROM.
    """
    if not m.froms:
        raise ModelfileError("no FROM line")
    out: list[str] = []
    if header is not None:
        out.extend(f"# {line}".rstrip() + "\n" for line in header.splitlines())
        out.append("\n")
    out.extend(_line("FROM", v) for v in m.froms)
    out.extend(_line("ADAPTER", v) for v in m.adapters)
    for keyword, single in (
        ("DRAFT", m.draft),
        ("TEMPLATE", m.template),
        ("SYSTEM", m.system),
        ("RENDERER", m.renderer),
        ("PARSER", m.parser),
        ("REQUIRES", m.requires),
    ):
        if single is not None:
            out.append(_line(keyword, single))
    for name, value in m.parameters.items():
        if not _PARAM_NAME.match(name):
            raise ModelfileError(f"PARAMETER: invalid parameter name {name!r}")
        prefix = f"PARAMETER {name}"
        values = value if isinstance(value, list) else [value]
        for item in values:
            text = item if isinstance(item, str) else format_parameter_value(item)
            out.append(_line(prefix, text))
    out.extend(_line("LICENSE", v) for v in m.licenses)
    out.extend(_line(f"MESSAGE {msg.role}", msg.content) for msg in m.messages)
    return "".join(out)

"""Modelfile text -> commands, by ocillm/grammar/modelfile.lark and Ollama's ParseFile rules."""

from __future__ import annotations

import functools
import importlib.resources
import re

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ocillm.errors import ModelfileError
from ocillm.modelfile.model import Command
from ocillm.modelfile.text import DROPPED, LineIndex, decode, mark_dropped

INSTRUCTIONS = (
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "draft",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
)
# Ollama's wording (parser.errInvalidCommand / errInvalidMessageRole / errMissingFrom).
INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
MISSING_FROM = "no FROM line"
UNEXPECTED_EOF = "unexpected EOF"

_ALPHA = re.compile(r"[A-Za-z]*")
_NAME_BEFORE = re.compile(r"[A-Za-z0-9_]*\Z")
_SPACE = " \t"
_TRIM = " \t\r\n"


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    source = importlib.resources.files("ocillm") / "grammar" / "modelfile.lark"
    return Lark(source.read_text(encoding="utf-8"), parser="lalr", lexer="contextual")


def unquote(value: str) -> tuple[str, bool]:
    """Ollama's unquote: strip one pair of ``\"\"\"`` or ``\"``; False when unbalanced."""
    if value.startswith('"""'):
        if len(value) >= 6 and value.endswith('"""'):
            return value[3:-3], True
        return "", False
    if value.startswith('"'):
        if len(value) >= 2 and value.endswith('"'):
            return value[1:-1], True
        return "", False
    return value, True


class _Source:
    """The decoded text plus what errors need to point into it."""

    def __init__(self, data: bytes | str, filename: str) -> None:
        self.filename = filename
        self.original = decode(data)
        self.text = mark_dropped(self.original)
        self.lines = LineIndex(self.original)

    def error(self, message: str, offset: int | None) -> ModelfileError:
        if offset is None:
            return ModelfileError(message, filename=self.filename)
        line, column = self.lines.position(offset)
        return ModelfileError(
            message,
            filename=self.filename,
            line=line,
            column=column,
            source_line=self.lines.line_text(line),
        )


def _pos(token: Token) -> int:
    return token.start_pos or 0


def _value_of(token: Token, src: _Source) -> tuple[str, int]:
    """A VALUE token's text (Ollama's TrimSpace + unquote) and the offset it starts at."""
    raw = token.value
    start = _pos(token) + len(raw) - len(raw[1:].lstrip(_SPACE + DROPPED))
    text, ok = unquote(raw.replace(DROPPED, "").strip(_TRIM))
    if not ok:  # pragma: no cover - the grammar lets only balanced values through
        raise src.error(UNEXPECTED_EOF, start)
    return text, start


def _commands(tree: Tree[Token], src: _Source) -> list[Command]:
    commands: list[Command] = []
    for node in tree.children:
        if not isinstance(node, Tree):
            continue  # a COMMENT
        tokens = [t for t in node.children if isinstance(t, Token)]
        head, value_tok = tokens[0], tokens[-1]
        if value_tok.type == "UNCLOSED":
            quote_at = _pos(value_tok) + value_tok.value.index('"')
            raise src.error(
                f"{UNEXPECTED_EOF} (the quoted value that starts here is never closed: a "
                'closing " or """ must end a line)',
                quote_at,
            )
        args, value_at = _value_of(value_tok, src)
        word = head.value.lstrip(DROPPED).lower()
        name_at = value_at
        if node.data == "parameter":
            name = tokens[1].value if len(tokens) == 3 else ""
            if len(tokens) == 3:
                name_at = _pos(tokens[1])
        elif node.data == "message":
            name = "message"
            args = f"{tokens[1].value}: {args}"
        else:
            name = "model" if word == "from" else word
        line, column = src.lines.position(_pos(head))
        cmd = Command(name=name, args=args, line=line, column=column)
        cmd._value_pos = src.lines.position(value_at)
        cmd._name_pos = src.lines.position(name_at)
        commands.append(cmd)
    return commands


def _syntax_error(exc: UnexpectedInput, src: _Source) -> ModelfileError:
    """Explain where the grammar stopped, in the words Ollama's state machine would use."""
    text = src.text
    if isinstance(exc, UnexpectedToken):
        expected = set(exc.expected)
        pos = len(text) if exc.token.type == "$END" else _pos(exc.token)
    elif isinstance(exc, UnexpectedCharacters):
        expected = set(exc.allowed)
        pos = exc.pos_in_stream or 0
    else:  # pragma: no cover - LALR raises only the two above
        return src.error(UNEXPECTED_EOF, len(text))

    if "COMMAND" in expected:
        return _bad_instruction(pos, src)
    if "ROLE" in expected:
        return _bad_role(pos, src)
    # After PARAMETER: the name (possibly empty) must be [A-Za-z0-9_]* then a space or tab.
    name = _NAME_BEFORE.search(text, 0, pos).group()  # type: ignore[union-attr]
    if pos >= len(text):
        return src.error(f"{UNEXPECTED_EOF} (PARAMETER needs a name and a value)", pos)
    ch = text[pos]
    if ch in "\r\n":
        hint = "PARAMETER needs a value after its name"
    else:
        hint = "parameter names may contain only letters, digits and _"
    return src.error(f"{UNEXPECTED_EOF}: {name} ({hint})", pos)


def _bad_instruction(pos: int, src: _Source) -> ModelfileError:
    text = src.text
    if pos >= len(text):  # pragma: no cover - the item list may end anywhere
        return src.error(UNEXPECTED_EOF, pos)
    # Ollama reads an instruction word as one arbitrary character, then letters.
    end = _ALPHA.match(text, pos + 1).end()  # type: ignore[union-attr]
    word = text[pos:end].lstrip(DROPPED)
    if end >= len(text):
        if word.lower() in INSTRUCTIONS:
            return src.error(f"{UNEXPECTED_EOF} ({word.upper()} needs a value)", end)
        return src.error(UNEXPECTED_EOF, end)
    if word.lower() in INSTRUCTIONS:
        return src.error(
            f"{INVALID_COMMAND}; {word.upper()} must be followed by a space or tab and its value",
            end,
        )
    # Show what was typed, dropped characters included: they are the usual culprit.
    shown = src.original[pos : end if text[end] in " \t\r\n" else end + 1]
    return src.error(f"{INVALID_COMMAND}, not {shown!r}", pos)


def _bad_role(pos: int, src: _Source) -> ModelfileError:
    text = src.text
    end = _ALPHA.match(text, pos).end()  # type: ignore[union-attr]
    role = text[pos:end]
    if end >= len(text):
        return src.error(f"{UNEXPECTED_EOF} (MESSAGE needs a role and a text)", end)
    if text[end] in _SPACE:
        return src.error(f"{INVALID_ROLE}, not {role!r}", pos)
    if text[end] in "\r\n":
        hint = "MESSAGE needs a text after its role"
    else:
        hint = 'write the role alone, e.g. "MESSAGE user Hello"'
    return src.error(f"{UNEXPECTED_EOF}: {role} ({hint})", end)


def parse_source(data: bytes | str, filename: str) -> tuple[list[Command], _Source]:
    """Parse without the FROM check (lint goes on to validate a file that lacks one)."""
    src = _Source(data, filename)
    try:
        tree = _lark().parse(src.text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, src) from None
    return _commands(tree, src), src


def parse_commands(data: bytes | str, filename: str = "Modelfile") -> list[Command]:
    """The commands of a Modelfile, with Ollama's ``parser.ParseFile`` semantics exactly.

    Raises :class:`ModelfileError` (and nothing else) at the first syntax error, or with
    ``no FROM line`` when no FROM instruction appears anywhere.
    """
    commands, src = parse_source(data, filename)
    if not any(c.name == "model" for c in commands):
        raise src.error(MISSING_FROM, None)
    return commands

"""Parse Go template text into :mod:`ocillm.template.nodes` with the Lark grammar ``gotemplate.lark``.

The grammar is loaded from the package (``ocillm/grammar`` is installed with the package), so this
works from a checkout and from an installed wheel alike.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from ocillm.errors import TemplateError

from . import nodes as n

_SPACE = " \t\r\n"

_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "block", "template", "break", "continue"}
)


@dataclass
class ParseTree:
    """The result of parsing: the main template's body and every ``{{define}}``/``{{block}}``."""

    name: str
    root: n.ListNode
    defines: dict[str, n.ListNode] = field(default_factory=dict)


@functools.lru_cache(maxsize=1)
def grammar_parser() -> Lark:
    """The LALR parser built (once) from the packaged grammar ``ocillm/grammar/gotemplate.lark``."""
    text = (resources.files("ocillm") / "grammar" / "gotemplate.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", lexer="contextual", start="start", maybe_placeholders=False)


def parse(text: str, name: str = "template", funcs: frozenset[str] = frozenset()) -> ParseTree:
    """Parse ``text``; raise :class:`TemplateError` (with line and column) when it does not parse."""
    try:
        tree = grammar_parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc, name) from None
    builder = _Builder(text, name, funcs)
    try:
        items = builder.transform(tree)
    except VisitError as exc:
        err = exc.orig_exc
        if isinstance(err, _BuildError):
            raise TemplateError(err.message, line=err.line, column=err.column, name=name) from None
        raise
    result = ParseTree(name=name, root=n.ListNode([]))
    for item in items.children if isinstance(items, Tree) else []:
        if isinstance(item, _Define):
            _add_define(result, item, name)
        elif item is not None and not isinstance(item, Tree):
            result.root.nodes.append(item)
    for define in builder.blocks:
        _add_define(result, define, name)
    return result


def _add_define(result: ParseTree, define: _Define, name: str) -> None:
    old = result.defines.get(define.name)
    if old is not None and not _is_empty(old) and not _is_empty(define.body):
        raise TemplateError(
            f"template: multiple definition of template {define.name!r}",
            line=define.pos.line,
            column=define.pos.column,
            name=name,
        )
    if old is None or _is_empty(old):
        result.defines[define.name] = define.body


def _is_empty(body: n.ListNode) -> bool:
    return all(isinstance(x, n.Text) and not x.text.strip(_SPACE) for x in body.nodes)


def _syntax_error(text: str, exc: UnexpectedInput, name: str) -> TemplateError:
    line = getattr(exc, "line", 0) or 0
    column = getattr(exc, "column", 0) or 0
    pos = getattr(exc, "pos_in_stream", None)
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        pos = len(text)
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        message = "unclosed action" if _inside_action(text, pos) else "unexpected EOF"
        return TemplateError(message, line=line, column=column, name=name)
    if isinstance(exc, UnexpectedCharacters):
        if pos is not None and _inside_action(text, pos):
            ch = text[pos] if pos < len(text) else ""
            if text.startswith("/*", pos) or text.startswith("*/", pos):
                message = "comment must start right after {{ and end right before }}"
            else:
                message = f"unexpected {ch!r} in action"
        else:
            message = "unexpected character"
        return TemplateError(message, line=line, column=column, name=name)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        value = str(tok)
        if tok.type == "END_OPEN":
            message = "unexpected {{end}}"
        elif tok.type == "ELSE_OPEN":
            message = "unexpected {{else}}"
        elif tok.type in ("RD", "RD_TRIM") or value.startswith(("}}", "-}}")):
            message = "missing value in action"
        else:
            message = f"unexpected {value!r} in action"
        return TemplateError(message, line=line, column=column, name=name)
    return TemplateError(str(exc).splitlines()[0], line=line, column=column, name=name)


def _inside_action(text: str, pos: int) -> bool:
    before = text[:pos]
    return before.rfind("{{") > before.rfind("}}")


# ---- literal decoding ------------------------------------------------------------------------------

_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


def unquote(literal: str) -> str:
    """Go's ``strconv.Unquote`` for "..." and `...` literals (and the body of '...')."""
    if literal.startswith("`"):
        return literal[1:-1].replace("\r", "")
    body = literal[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        esc = body[i + 1]
        if esc in _ESCAPES:
            out += _ESCAPES[esc].encode()
            i += 2
        elif esc == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif esc in "01234567":
            out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        elif esc in "uU":
            width = 4 if esc == "u" else 8
            out += chr(int(body[i + 2 : i + 2 + width], 16)).encode("utf-8", "surrogatepass")
            i += 2 + width
        else:
            raise ValueError(f"invalid escape \\{esc}")
    return out.decode("utf-8", "replace")


_OCTAL = re.compile(r"[+-]?0[0-7_]+")


def parse_number(text: str) -> int | float | complex:
    """A Go numeric constant as the value text/template gives it (int, float64 or complex128)."""
    t = text.replace("_", "")
    if t.endswith("i"):
        inner = parse_number(t[:-1])
        return complex(0, inner.imag if isinstance(inner, complex) else float(inner))
    sign = -1 if t.startswith("-") else 1
    body = t.lstrip("+-")
    low = body.lower()
    if low.startswith("0x"):
        if "." in low or "p" in low:
            return sign * float.fromhex(body)
        return sign * int(body, 16)
    if low.startswith(("0b", "0o")):
        return sign * int(body, 0)
    if _OCTAL.fullmatch(t) and len(body) > 1:
        return sign * int(body, 8)
    if any(c in low for c in ".e"):
        return float(t)
    return int(t)


# ---- tree building ---------------------------------------------------------------------------------


class _BuildError(Exception):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass
class _Define:
    name: str
    body: n.ListNode
    pos: n.Pos


@dataclass
class _Else:
    kind: str  # "plain", "if", "with"
    pipe: n.PipeNode | None
    body: n.ListNode
    tail: _Else | None
    pos: n.Pos


def _pos(tok: Any) -> n.Pos:
    if isinstance(tok, Token):
        return n.Pos(tok.line or 0, tok.column or 0)
    return n.Pos()


def _strip_tokens(children: list[Any]) -> list[Any]:
    return [c for c in children if not isinstance(c, Token)]


class _Builder(Transformer[Token, Any]):
    def __init__(self, source: str, name: str, funcs: frozenset[str]) -> None:
        super().__init__()
        self.source = source
        self.template_name = name
        self.funcs = funcs
        self.blocks: list[_Define] = []

    # -- text ---------------------------------------------------------------------------------------

    def text(self, children: list[Token]) -> n.Text | None:
        tok = children[0]
        src = self.source
        start, end = tok.start_pos or 0, tok.end_pos or 0
        value = str(tok)
        if start >= 4 and src[start - 3 : start] == "-}}" and src[start - 4] in _SPACE:
            value = value.lstrip(_SPACE)
        if src.startswith("{{-", end) and end + 3 < len(src) and src[end + 3] in _SPACE:
            value = value.rstrip(_SPACE)
        return n.Text(value) if value else None

    def comment(self, children: list[Token]) -> None:
        return None

    def body(self, children: list[Any]) -> n.ListNode:
        return n.ListNode([c for c in children if c is not None])

    # -- closing delimiters -------------------------------------------------------------------------

    def RD_TRIM(self, tok: Token) -> Token:  # Lark names token callbacks after the terminals
        start = tok.start_pos or 0
        if start == 0 or self.source[start - 1] not in _SPACE:
            raise _BuildError('bad number syntax: "-"', tok.line or 0, tok.column or 0)
        return tok

    # -- actions ------------------------------------------------------------------------------------

    def action(self, children: list[Any]) -> n.ActionNode:
        pipe = _strip_tokens(children)[0]
        return n.ActionNode(pipe, _pos(children[0]))

    def break_node(self, children: list[Any]) -> n.BreakNode:
        return n.BreakNode(_pos(children[0]))

    def continue_node(self, children: list[Any]) -> n.ContinueNode:
        return n.ContinueNode(_pos(children[0]))

    def _branch(self, children: list[Any], kind: str) -> tuple[n.PipeNode, n.ListNode, Any]:
        rest = _strip_tokens(children)
        pipe, body = rest[0], rest[1]
        tail = rest[2] if len(rest) > 2 else None
        self._check_decl(pipe, kind)
        return pipe, body, tail

    def _else_list(self, tail: _Else | None, ctor: Any) -> n.ListNode | None:
        if tail is None:
            return None
        if tail.kind == "plain":
            return tail.body
        assert tail.pipe is not None
        inner = ctor(tail.pipe, tail.body, self._else_list(tail.tail, ctor), tail.pos)
        return n.ListNode([inner])

    def if_node(self, children: list[Any]) -> n.IfNode:
        pipe, body, tail = self._branch(children, "if")
        return n.IfNode(pipe, body, self._else_list(tail, n.IfNode), _pos(children[0]))

    def with_node(self, children: list[Any]) -> n.WithNode:
        pipe, body, tail = self._branch(children, "with")
        return n.WithNode(pipe, body, self._else_list(tail, n.WithNode), _pos(children[0]))

    def range_node(self, children: list[Any]) -> n.RangeNode:
        pipe, body, tail = self._branch(children, "range")
        return n.RangeNode(pipe, body, self._else_list(tail, n.RangeNode), _pos(children[0]))

    def else_plain(self, children: list[Any]) -> _Else:
        body = _strip_tokens(children)[0]
        return _Else("plain", None, body, None, _pos(children[0]))

    def else_if(self, children: list[Any]) -> _Else:
        return self._else_chain(children, "if")

    def else_with(self, children: list[Any]) -> _Else:
        return self._else_chain(children, "with")

    def _else_chain(self, children: list[Any], kind: str) -> _Else:
        rest = _strip_tokens(children)
        pipe, body = rest[0], rest[1]
        self._check_decl(pipe, kind)
        tail = rest[2] if len(rest) > 2 else None
        return _Else(kind, pipe, body, tail, _pos(children[0]))

    def _check_decl(self, pipe: n.PipeNode, kind: str) -> None:
        if len(pipe.decl) > 1 and kind != "range":
            raise _BuildError(f"too many declarations in {kind}", pipe.pos.line, pipe.pos.column)

    def define(self, children: list[Any]) -> _Define:
        rest = _strip_tokens(children)
        return _Define(rest[0], rest[1], _pos(children[0]))

    def block(self, children: list[Any]) -> n.TemplateNode:
        rest = _strip_tokens(children)
        name, pipe, body = rest[0], rest[1], rest[2]
        self.blocks.append(_Define(name, body, _pos(children[0])))
        return n.TemplateNode(name, pipe, _pos(children[0]))

    def template_call(self, children: list[Any]) -> n.TemplateNode:
        rest = _strip_tokens(children)
        pipe = rest[1] if len(rest) > 1 else None
        return n.TemplateNode(rest[0], pipe, _pos(children[0]))

    def name(self, children: list[Token]) -> str:
        return unquote(str(children[0]))

    # -- pipelines ----------------------------------------------------------------------------------

    def pipeline(self, children: list[Any]) -> n.PipeNode:
        decl: list[str] = []
        is_assign = False
        cmds: list[n.CommandNode] = []
        for child in children:
            if isinstance(child, tuple):
                decl, is_assign = child
            elif isinstance(child, n.CommandNode):
                cmds.append(child)
        for i, cmd in enumerate(cmds):
            if i > 0 and cmd.args and isinstance(cmd.args[0], _NON_EXECUTABLE):
                raise _BuildError(f"non executable command in pipeline stage {i + 1}", 0, 0)
        return n.PipeNode(decl, is_assign, cmds)

    def decl_one(self, children: list[Token]) -> tuple[list[str], bool]:
        return [self._plain_var(children[0])], str(children[-1]) == "="

    def decl_two(self, children: list[Token]) -> tuple[list[str], bool]:
        return [self._plain_var(children[0]), self._plain_var(children[1])], str(
            children[-1]
        ) == "="

    def _plain_var(self, tok: Token) -> str:
        if "." in str(tok):
            raise _BuildError(
                f"unexpected {str(tok)!r} in declaration", tok.line or 0, tok.column or 0
            )
        return str(tok)

    def command(self, children: list[Any]) -> n.CommandNode:
        return n.CommandNode(list(children))

    def field(self, children: list[Token]) -> n.FieldNode:
        return n.FieldNode(str(children[0])[1:].split("."), _pos(children[0]))

    def variable(self, children: list[Token]) -> n.VariableNode:
        return n.VariableNode(str(children[0]).split("."), _pos(children[0]))

    def dot(self, children: list[Token]) -> n.DotNode:
        return n.DotNode()

    def nil(self, children: list[Token]) -> n.NilNode:
        return n.NilNode()

    def true(self, children: list[Token]) -> n.BoolNode:
        return n.BoolNode(True)

    def false(self, children: list[Token]) -> n.BoolNode:
        return n.BoolNode(False)

    def number(self, children: list[Token]) -> n.NumberNode:
        tok = children[0]
        try:
            value = parse_number(str(tok))
        except ValueError:
            raise _BuildError(
                f"bad number syntax: {str(tok)!r}", tok.line or 0, tok.column or 0
            ) from None
        return n.NumberNode(value, str(tok))

    def char(self, children: list[Token]) -> n.NumberNode:
        tok = children[0]
        try:
            value = unquote('"' + str(tok)[1:-1].replace('"', '\\"') + '"')
        except (ValueError, IndexError):
            value = ""
        if len(value) != 1:
            raise _BuildError(
                f"malformed character constant: {tok!s}", tok.line or 0, tok.column or 0
            )
        return n.NumberNode(ord(value), str(tok))

    def string(self, children: list[Token]) -> n.StringNode:
        tok = children[0]
        try:
            return n.StringNode(unquote(str(tok)), str(tok))
        except (ValueError, IndexError):
            raise _BuildError(
                f"invalid syntax in string {tok!s}", tok.line or 0, tok.column or 0
            ) from None

    def identifier(self, children: list[Token]) -> n.IdentifierNode:
        tok = children[0]
        name = str(tok)
        if name in _KEYWORDS:
            raise _BuildError(f"unexpected <{name}> in command", tok.line or 0, tok.column or 0)
        if name not in self.funcs:
            raise _BuildError(
                f"function {name!r} not defined".replace("'", '"'),
                tok.line or 0,
                tok.column or 0,
            )
        return n.IdentifierNode(name, _pos(tok))

    def paren(self, children: list[Any]) -> n.PipeNode:
        return _strip_tokens(children)[0]  # type: ignore[no-any-return]

    def chain(self, children: list[Any]) -> n.ChainNode:
        pipe = _strip_tokens(children)[0]
        tok = children[-1]
        fields = str(tok)[2:].split(".")
        return n.ChainNode(pipe, fields)


_NON_EXECUTABLE = (n.BoolNode, n.DotNode, n.NilNode, n.NumberNode, n.StringNode)

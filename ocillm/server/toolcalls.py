"""Tool calls in a model's output, found by the convention its template writes them in.

Ollama does not ask models for a special format: the template shows the model how its past tool
calls look, and the same convention is looked for in what it writes. This module follows
Ollama's rules (``tools/template.go``, ``tools/tools.go``), in its own code:

* **The tag** (:func:`tool_call_tag`). In a Go TEMPLATE, the first ``if`` whose pipeline names
  ``.ToolCalls``; in it, the first text that is not blank (looking into nested ``if``/``range``/
  ``with``, stopping at an action); that text up to its first ``{``, stripped. A template that
  writes ``<tool_call>{"name": ...`` gives ``<tool_call>``; mistral's ``[TOOL_CALLS] [`` gives
  ``[TOOL_CALLS] [``; one that writes bare JSON objects (llama 3.1) gives ``{``. With nothing to
  find, ``{``. A GGUF Jinja chat template has no tree to walk: the first known marker it
  contains (``<tool_call>``, ``[TOOL_CALLS]``, ...) is the tag, else ``{``.
* **The parser** (:class:`ToolCallParser`), fed the output piece by piece as it streams. Text
  before the tag is content, passed on at once (a piece that may be the start of the tag is held
  back). From the tag on, each tool call is: the earliest name of a requested tool in the text,
  then the first complete JSON object; its arguments are the object's ``arguments`` or
  ``parameters`` (an object, or a string holding one) when it has a ``name``, else the value
  under the tool's name, else the object itself. With the tags ``{`` and ``[``, output whose
  first non-blank text is not the tag is plain content, and a balanced object/list that holds
  no call is given back as content too.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ocillm.errors import OcillmError
from ocillm.server.models import TemplateChoice
from ocillm.template import nodes as n
from ocillm.template import parse_template

JSON_TAG = "{"
LIST_TAG = "["

#: Markers GGUF Jinja chat templates write before a tool call, most specific first.
JINJA_MARKERS = (
    "<tool_call>",
    "<|tool_call|>",
    "<|tool_call_start|>",
    "[TOOL_CALLS]",
    "<|python_tag|>",
    "<｜tool▁calls▁begin｜>",
    "<|tool▁calls▁begin|>",
    "<function_call>",
    "functools[",
)

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_call_id() -> str:
    """``call_`` and 8 random lower-case letters and digits, as Ollama names tool calls."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


# --- the tag ----------------------------------------------------------------------------------


def tool_call_tag(choice: TemplateChoice) -> str:
    """The text that starts a tool call in the output of a model using this template."""
    if choice.kind == "jinja":
        return next((m for m in JINJA_MARKERS if m in choice.text), JSON_TAG)
    try:
        tmpl = parse_template(choice.text)
    except OcillmError:
        return JSON_TAG
    node = _tool_calls_if(tmpl.tree.root.nodes)
    if node is None:
        return JSON_TAG
    text = _first_text(node.list.nodes)
    if text is None:
        return JSON_TAG
    tag = text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or JSON_TAG


def _names_tool_calls(node: n.IfNode) -> bool:
    return any(
        isinstance(arg, n.FieldNode) and "ToolCalls" in arg.idents
        for cmd in node.pipe.cmds
        for arg in cmd.args
    )


def _branches(node: Any) -> Iterator[list[Any]]:
    yield node.list.nodes
    if node.else_list is not None:
        yield node.else_list.nodes


def _tool_calls_if(nodes: Sequence[Any]) -> n.IfNode | None:
    """The first ``if`` (depth first, into ``if``/``range``/``with``) testing ``.ToolCalls``."""
    for node in nodes:
        if isinstance(node, n.IfNode) and _names_tool_calls(node):
            return node
        if isinstance(node, n.ListNode):
            found = _tool_calls_if(node.nodes)
        elif isinstance(node, (n.IfNode, n.RangeNode, n.WithNode)):
            found = next((f for b in _branches(node) if (f := _tool_calls_if(b)) is not None), None)
        else:
            continue
        if found is not None:
            return found
    return None


def _first_text(nodes: Sequence[Any]) -> str | None:
    """The first non-blank text, not looking past an action or a nested block's end."""
    for node in nodes:
        if isinstance(node, n.Text):
            if node.text.strip():
                return node.text
        elif isinstance(node, n.ListNode):
            found = _first_text(node.nodes)
            if found is not None:
                return found
        elif isinstance(node, (n.IfNode, n.RangeNode, n.WithNode)):
            return next((t for b in _branches(node) if (t := _first_text(b)) is not None), None)
        elif isinstance(node, n.ActionNode):
            return None
    return None


# --- the parser -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: the tool's name, its arguments, its position in the reply."""

    name: str
    arguments: dict[str, Any]
    index: int
    id: str = field(default_factory=new_call_id)

    def native(self) -> dict[str, Any]:
        """Ollama's wire shape (``message.tool_calls[]``)."""
        return {
            "id": self.id,
            "function": {"index": self.index, "name": self.name, "arguments": self.arguments},
        }


def _tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    names = []
    for tool in tools:
        function = tool.get("function") or {}
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(name, str) and name:
            names.append(name)
    return names


def _scan(text: str, opening: str, closing: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every balanced ``opening``…``closing`` group at depth 0, outside strings."""
    depth = 0
    start = -1
    in_string = escaped = False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif c == opening:
            if depth == 0:
                start = i
            depth += 1
        elif c == closing and depth > 0:
            depth -= 1
            if depth == 0:
                yield start, i + 1


def _as_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None
    return None


_MISSING: dict[str, Any] = {}


def _arguments_in(obj: dict[str, Any], tool: str) -> dict[str, Any] | None:
    """The arguments a decoded object holds for ``tool``; ``_MISSING`` for a call without any."""
    if "name" in obj:
        for key in ("arguments", "parameters"):
            found = _as_object(obj.get(key))
            if found is not None:
                return found
        return _MISSING
    found = _as_object(obj.get(tool))
    if found is not None:
        return found
    for value in obj.values():
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, dict):
                inner = _arguments_in(child, tool)
                if inner is not None:
                    return inner
    return None


class ToolCallParser:
    """Splits streamed output into content and tool calls (see the module's description)."""

    def __init__(self, tools: Sequence[Mapping[str, Any]], tag: str) -> None:
        self.names = _tool_names(tools)
        self.tag = tag
        self.buffer = ""
        self.calling = False  # the tag was seen
        self.done = False  # no more calls: everything passes through as content
        self.count = 0

    @property
    def bracket_tag(self) -> bool:
        return self.tag in (JSON_TAG, LIST_TAG)

    def add(self, text: str) -> tuple[list[ToolCall], str]:
        """Feed the next piece of output; returns the calls completed and the content to show."""
        if self.done:
            return [], text
        self.buffer += text
        content = ""
        if not self.calling:
            at, found = self._find_tag()
            content, self.buffer = self.buffer[:at], self.buffer[at:]
            if self.bracket_tag and content.strip():
                self.done = True
                content, self.buffer = content + self.buffer, ""
                return [], content
            if not found:
                return [], content
            self.calling = True
        calls = []
        while (call := self._next_call()) is not None:
            calls.append(call)
        if self.bracket_tag and self._balanced():
            self.done = True
            content, self.buffer = content + self.buffer, ""
        return calls, content

    def finish(self) -> str:
        """The content still held back when the output ends."""
        held, self.buffer = self.buffer, ""
        if not self.calling:
            return held  # a partial tag that never completed is text
        if self.count == 0 and self.bracket_tag:
            return held  # JSON that was not a tool call
        return ""

    def _find_tag(self) -> tuple[int, bool]:
        """Where the tag starts (found), or where a possible start of it begins (not found)."""
        at = self.buffer.find(self.tag)
        if at >= 0:
            return at, True
        for size in range(min(len(self.buffer), len(self.tag) - 1), 0, -1):
            if self.buffer.endswith(self.tag[:size]):
                return len(self.buffer) - size, False
        return len(self.buffer), False

    def _find_name(self) -> tuple[str, int] | None:
        """The earliest (then longest) tool name in the buffer and where it ends, unless the
        buffer ends with what may be the start of a longer name."""
        if not self.buffer or not self.names:
            return None
        longest = max(len(name) for name in self.names)
        for size in range(1, min(len(self.buffer), longest) + 1):
            tail = self.buffer[-size:]
            if any(len(tail) < len(name) and name.startswith(tail) for name in self.names):
                return None
        best: tuple[int, str] | None = None
        for name in self.names:
            at = self.buffer.find(name)
            if at < 0:
                continue
            if best is None or at < best[0] or (at == best[0] and len(name) > len(best[1])):
                best = (at, name)
        if best is None:
            return None
        return best[1], best[0] + len(best[1])

    def _next_call(self) -> ToolCall | None:
        named = self._find_name()
        if named is None:
            return None
        name, end = named
        for start, stop in _scan(self.buffer, "{", "}"):
            try:
                obj = json.loads(self.buffer[start:stop])
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            arguments = _arguments_in(obj, name)
            if arguments is _MISSING:
                return None  # {"name": ...} with no arguments: not a call (as Ollama)
            call = ToolCall(name, obj if arguments is None else arguments, self.count)
            self.count += 1
            self.buffer = self.buffer[max(end, stop) :]
            return call
        return None

    def _balanced(self) -> bool:
        closing = "}" if self.tag == JSON_TAG else "]"
        return next(iter(_scan(self.buffer, self.tag, closing)), None) is not None


def parser_for(
    choice: TemplateChoice, tools: Sequence[Mapping[str, Any]] | None
) -> ToolCallParser | None:
    """A parser for a request with ``tools``; None without."""
    if not tools:
        return None
    return ToolCallParser(tools, tool_call_tag(choice))

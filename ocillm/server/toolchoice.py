"""A tool call the request requires: a grammar that lets the model write nothing else.

``tool_choice`` in the OpenAI, Anthropic and Responses APIs can require a call (of any tool, or of
one named tool). The model is then sampled under a grammar made of the template's own call
convention (:func:`ocillm.server.toolcalls.tool_call_tag`: ``<tool_call>``, ``[TOOL_CALLS] [``, a
bare JSON object, ...) followed by one JSON object ``{"name": <a required tool>, "arguments":
<its parameters schema>}``, so :class:`~ocillm.server.toolcalls.ToolCallParser` finds exactly one
call in what it writes. When the grammar is complete, the model can only end its turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ocillm.server.errors import ApiError
from ocillm.server.formats import grammar_for
from ocillm.server.models import TemplateChoice
from ocillm.server.toolcalls import JSON_TAG, LIST_TAG, tool_call_tag

_ROOT = re.compile(r"^root ::= ", re.MULTILINE)
#: Parameters of a tool that gives none: any object.
ANY_OBJECT: dict[str, Any] = {"type": "object"}


def _parameters(tools: Sequence[Mapping[str, Any]], name: str) -> Any:
    for tool in tools:
        function = tool.get("function") or {}
        if function.get("name") == name:
            return function.get("parameters") or ANY_OBJECT
    raise ApiError(400, f"tool_choice names the tool {name!r}, which is not in tools")


def call_schema(tools: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of one call of one of ``names``."""
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": name}, "arguments": _parameters(tools, name)},
            "required": ["name", "arguments"],
        }
        for name in names
    ]
    return calls[0] if len(calls) == 1 else {"anyOf": calls}


def forced_call_grammar(
    choice: TemplateChoice, tools: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> str:
    """GBNF for the template's call tag, then one call of one of ``names``."""
    body = grammar_for(call_schema(tools, names))
    assert body is not None
    tag = tool_call_tag(choice)
    if tag == JSON_TAG:
        return body
    rules = _ROOT.sub("forced-call ::= ", body, count=1)
    closing = ' "]"' if tag == LIST_TAG or tag.endswith("[") else ""
    literal = json.dumps(tag, ensure_ascii=False)
    return f"root ::= {literal} [ \\t\\n]* forced-call{closing}\n{rules}"

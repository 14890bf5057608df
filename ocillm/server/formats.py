"""``format``: ``"json"`` or a JSON Schema object → a GBNF grammar the runner samples with.

``"json"`` is llama.cpp's JSON grammar; a schema is converted by llama-cpp-python's
``json_schema_to_gbnf``, whose refusals (an unknown type, a bad ``$ref``) are a 400. Anything else
is a 400 with Ollama's words. ``null`` and ``""`` mean "not set", as in Ollama.

The converter's ``char`` rule (one character of a JSON string) is ``[^"\\]``, and its ``dot``
rule (a pattern's ``.``) is ``[^\x0a\x0d]``: both let a raw control character (U+0000-U+001F)
into a string, which JSON forbids and strict parsers (``json.loads``, ``JSON.parse``) reject.
llama.cpp's own converter and JSON grammar exclude them and DEL; :func:`strict_strings` rewrites
those two rules the same way.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from ocillm.server.errors import ApiError

#: An unescaped character JSON allows in a string: not ``"``, ``\``, DEL or a control character.
STRING_CHAR = r'[^"\\\x7F\x00-\x1F]'
#: One character of a JSON string: an allowed character or an escape (the converter's escapes).
CHAR_RULE = (
    STRING_CHAR + r' | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
)
#: The rules whose bodies :func:`strict_strings` replaces: every string the converter writes is
#: made of ``char``s, and a pattern's ``.`` (inside a string too) is ``dot``.
STRICT_RULES = {"char": CHAR_RULE, "dot": STRING_CHAR}
_RULE = re.compile(r"^(?P<name>[a-zA-Z0-9-]+) ::= ", re.MULTILINE)


def strict_strings(grammar: str) -> str:
    """``grammar`` with its ``char`` and ``dot`` rules kept to what a JSON string may hold."""
    lines = grammar.splitlines()
    for i, line in enumerate(lines):
        match = _RULE.match(line)
        if match and match["name"] in STRICT_RULES:
            lines[i] = f"{match['name']} ::= {STRICT_RULES[match['name']]}"
    return "\n".join(lines) + ("\n" if grammar.endswith("\n") else "")


def _go_quote(text: str) -> str:
    """Go's ``%q`` of a string (close enough for the JSON text it quotes)."""
    return json.dumps(text, ensure_ascii=False)


def grammar_for(fmt: Any) -> str | None:
    """The GBNF for a request's ``format``, or None when no format is asked for."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        from llama_cpp.llama_grammar import JSON_GBNF

        return str(JSON_GBNF)
    if not isinstance(fmt, dict):
        raw = json.dumps(fmt, ensure_ascii=False, separators=(",", ":"))
        raise ApiError(
            400,
            f'invalid format: {_go_quote(raw)}; expected "json" or a valid JSON Schema object',
        )
    return _schema_grammar(json.dumps(fmt, sort_keys=True))


@functools.lru_cache(maxsize=64)
def _schema_grammar(schema_text: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(schema_text)
    except Exception as err:  # the converter's refusals: assertions, wrong shapes, bad refs
        raise ApiError(400, f"invalid JSON schema in format: {err}") from None
    return strict_strings(str(grammar))

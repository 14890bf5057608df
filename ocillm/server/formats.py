"""``format``: ``"json"`` or a JSON Schema object → a GBNF grammar the runner samples with.

``"json"`` is llama.cpp's JSON grammar; a schema is converted by llama-cpp-python's
``json_schema_to_gbnf``, whose refusals (an unknown type, a bad ``$ref``) are a 400. Anything else
is a 400 with Ollama's words. ``null`` and ``""`` mean "not set", as in Ollama.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ocillm.server.errors import ApiError


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
    return str(grammar)

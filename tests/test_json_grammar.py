"""Structured output that strict parsers accept: every sampled answer to a JSON-schema ``format``
is JSON that ``json.loads`` takes (no raw control characters in strings) and that the schema
validates, for the keywords the grammar enforces.

The grammar goes the way the server sends it (``grammar_for`` → the runner's ``Engine``), on the
tiny random model, sampled hot with several seeds: a random model is the adversary here, it
writes whatever the grammar lets through.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.protocol import CompletionRequest
from ocillm.server.formats import grammar_for, strict_strings

CONTROL = {chr(c) for c in range(0x20)} | {"\x7f"}

#: Schemas whose every answer is bounded (maxLength, maxItems, enums, closed objects), so a
#: generation always ends well before ``num_predict``.
SCHEMAS: dict[str, dict[str, Any]] = {
    "short strings": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "note": {"type": "string", "minLength": 1, "maxLength": 8},
        },
        "required": ["name", "note"],
        "additionalProperties": False,
    },
    "nested objects": {
        "type": "object",
        "properties": {
            "user": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "tag": {"type": "string", "maxLength": 6},
                    "flags": {
                        "type": "object",
                        "properties": {"admin": {"type": "boolean"}},
                        "required": ["admin"],
                        "additionalProperties": False,
                    },
                },
                "required": ["id", "tag", "flags"],
                "additionalProperties": False,
            }
        },
        "required": ["user"],
        "additionalProperties": False,
    },
    "arrays": {
        "type": "object",
        "properties": {
            "words": {
                "type": "array",
                "items": {"type": "string", "maxLength": 5},
                "minItems": 1,
                "maxItems": 3,
            }
        },
        "required": ["words"],
        "additionalProperties": False,
    },
    "enums": {
        "type": "object",
        "properties": {
            "color": {"enum": ["red", "green", "blue"]},
            "size": {"type": "string", "enum": ["S", "M", "L"]},
            "label": {"type": "string", "maxLength": 4},
        },
        "required": ["color", "size", "label"],
        "additionalProperties": False,
    },
    "a pattern's dot": {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^a...b$"}},
        "required": ["code"],
        "additionalProperties": False,
    },
}
SEEDS = range(11)  # 5 schemas x 11 seeds: 55 generations

#: What the answers are validated against where it differs from the schema asked for. The
#: grammar counts a pattern's ``.`` in code points, but a code point the model spells in
#: byte-fallback tokens can be lost when the tokens are turned back into text (seen: "akb" for
#: ``^a...b$``), so the dots' count is not checked; that the text is JSON, and the rest, is.
VALIDATED_BY = {
    "a pattern's dot": SCHEMAS["a pattern's dot"]
    | {"properties": {"code": {"type": "string", "pattern": "^a.*b$"}}}
}


@pytest.fixture(scope="module")
def engine(tiny_gguf: Path) -> Engine:
    return Engine(EngineConfig(model=tiny_gguf, n_ctx=256))


def generate(engine: Engine, schema: dict[str, Any], seed: int) -> str:
    request = CompletionRequest(
        prompt="<|im_start|>user\nanswer in JSON<|im_end|>\n<|im_start|>assistant\n",
        grammar=grammar_for(schema),
        temperature=1.5,
        top_k=0,  # every token the grammar allows is in play
        top_p=1.0,
        seed=seed,
        num_predict=160,
    )
    chunks = list(engine.complete(request))
    assert chunks[-1].done and chunks[-1].done_reason == "stop", "the answer did not end"
    return "".join(c.content for c in chunks)


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_sampled_answers_parse_strictly_and_match_the_schema(engine: Engine, name: str) -> None:
    schema = SCHEMAS[name]
    for seed in SEEDS:
        text = generate(engine, schema, seed)
        value = json.loads(text)  # strict: a raw control character in a string fails here
        jsonschema.validate(value, VALIDATED_BY.get(name, schema))


def test_the_converter_rules_for_string_characters_are_rewritten() -> None:
    grammar = grammar_for(SCHEMAS["a pattern's dot"] | {"properties": {"s": {"type": "string"}}})
    assert grammar is not None
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())
    assert rules["char"].startswith(r'[^"\\\x7F\x00-\x1F] | "\\"')
    # Left alone: a grammar without the two rules, and the JSON grammar (already strict).
    assert strict_strings('root ::= "x"\n') == 'root ::= "x"\n'
    assert r"\x00-\x1F" in str(grammar_for("json"))


def test_the_unfixed_char_rule_lets_control_characters_through(engine: Engine) -> None:
    """The reason for the rewrite: the converter's own grammar, sampled the same way, writes raw
    control characters into strings on this model (so the tests above can see the fix)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    schema = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 40}}}
    raw = str(json_schema_to_gbnf(json.dumps(schema)))
    found = False
    for seed in range(20):
        request = CompletionRequest(
            prompt="hello", grammar=raw, temperature=1.5, top_k=0, top_p=1.0, seed=seed
        )
        request.num_predict = 120
        text = "".join(c.content for c in engine.complete(request))
        if CONTROL & set(text):
            found = True
            break
    assert found, "no raw control character in 20 samples: the rewrite is not tested here"

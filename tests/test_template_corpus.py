"""Ollama's own template test data (tests/corpus/ollama-templates) and the harness renderings
(tests/corpus/rendered) reproduce byte for byte."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from ocillm.errors import TemplateError
from ocillm.template import Values, collate, execute, parse_template, think_values

CORPUS = Path(__file__).resolve().parent / "corpus"
OLLAMA = CORPUS / "ollama-templates"
INPUTS: dict[str, Any] = json.loads((OLLAMA / "inputs.json").read_text(encoding="utf-8"))
RENDERED: dict[str, Any] = json.loads(
    (CORPUS / "rendered" / "renderings.json").read_text(encoding="utf-8")
)

_TT = INPUTS["TestTemplate"]
NAMED_CASES = [(t, key) for t in _TT["templates"] for key in _TT["conversations"]]
TRAILING_SPACE = set(_TT["trailing_space_rule"]["templates"])


@pytest.mark.parametrize(("template", "conversation"), NAMED_CASES)
def test_named_template_renders_byte_for_byte(template: str, conversation: str) -> None:
    text = (OLLAMA / "template" / template).read_text(encoding="utf-8")
    expected = (OLLAMA / "template" / "testdata" / template / conversation).read_bytes()
    got = execute(
        parse_template(text, template), Values(messages=_TT["conversations"][conversation])
    )
    if template in TRAILING_SPACE and got.endswith(" "):
        got = got[:-1]
    assert got.encode("utf-8") == expected


def test_all_sixty_named_cases_are_collected() -> None:
    assert len(NAMED_CASES) == 60


def _values(conv: dict[str, Any]) -> Values:
    values = Values(
        messages=conv.get("messages", []),
        tools=conv.get("tools"),
        prompt=conv.get("prompt", ""),
        suffix=conv.get("suffix", ""),
    )
    if "think" in conv:
        values.think, values.think_level, values.is_think_set = think_values(conv["think"])
        values.is_think_set = conv.get("is_think_set", True)
    return values


RENDER_CASES = [
    (r["source"], key, expected)
    for r in RENDERED["results"]
    for key, expected in r["renderings"].items()
]


@pytest.mark.parametrize(
    ("source", "conversation", "expected"),
    RENDER_CASES,
    ids=[f"{s}:{c}" for s, c, _ in RENDER_CASES],
)
def test_harness_rendering_matches(
    source: str, conversation: str, expected: dict[str, str]
) -> None:
    tmpl = parse_template(RENDERED["templates"][source], source)
    conv = RENDERED["conversations"][conversation]
    if "error" in expected:
        with pytest.raises(TemplateError):
            execute(tmpl, _values(conv))
    else:
        assert execute(tmpl, _values(conv)) == expected["output"]


@pytest.mark.parametrize("result", RENDERED["results"], ids=lambda r: r["source"])
def test_harness_vars_match(result: dict[str, Any]) -> None:
    tmpl = parse_template(RENDERED["templates"][result["source"]])
    assert tmpl.vars() == result["vars"]


@pytest.mark.parametrize("case", INPUTS["TestParse"], ids=lambda c: c["name"])
def test_parse_vars(case: dict[str, Any]) -> None:
    assert parse_template(case["template"]).vars() == case["vars"]


@pytest.mark.parametrize("case", INPUTS["TestParseError"], ids=lambda c: c["name"])
def test_parse_errors(case: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(case["template"])
    assert case["error_substring"].lower() in str(info.value).lower()


EXECUTE_CASES = [
    (case["name"], variant, text, case)
    for case in INPUTS["TestExecuteWithMessages"]
    for variant, text in case["templates"].items()
]


@pytest.mark.parametrize(
    ("name", "variant", "text", "case"),
    EXECUTE_CASES,
    ids=[f"{a}-{b}" for a, b, _, _ in EXECUTE_CASES],
)
def test_execute_with_messages(name: str, variant: str, text: str, case: dict[str, Any]) -> None:
    values = Values(messages=case["values"]["messages"])
    assert execute(parse_template(text), values) == case["expected"]


@pytest.mark.parametrize("case", INPUTS["TestExecuteWithSuffix"]["cases"], ids=lambda c: c["name"])
def test_execute_with_suffix(case: dict[str, Any]) -> None:
    tmpl = parse_template(INPUTS["TestExecuteWithSuffix"]["template"])
    v = case["values"]
    values = Values(
        messages=v.get("messages", []), prompt=v.get("prompt", ""), suffix=v.get("suffix", "")
    )
    assert execute(tmpl, values) == case["expected"]


@pytest.mark.parametrize("case", INPUTS["TestCollate"], ids=lambda c: c["name"])
def test_collate(case: dict[str, Any]) -> None:
    system, collated = collate(case["messages"])
    assert system == case["expected_system"]
    keep = ("role", "content", "tool_name")
    got = [{k: m[k] for k in keep if m.get(k)} for m in collated]
    want = [{k: m[k] for k in keep if m.get(k)} for m in case["expected_collated"]]
    assert got == want


@pytest.mark.parametrize("case", INPUTS["TestDateFunctions"], ids=lambda c: c["name"])
def test_date_functions(case: dict[str, Any]) -> None:
    today = datetime.date.today()
    got = execute(parse_template(case["template"]), Values(messages=case["messages"]))
    if case["name"] == "currentDate":
        assert got == f"Hello Today is {today:%Y-%m-%d}"
    elif case["name"] == "yesterdayDate":
        assert got == f"Hello Yesterday was {today - datetime.timedelta(days=1):%Y-%m-%d}"
    else:
        assert got == f"{today - datetime.timedelta(days=1):%Y-%m-%d}"


@pytest.mark.parametrize(
    "name",
    [
        "TestTemplateArgumentsJSON",
        "TestTemplatePropertiesJSON",
        "TestTemplateArgumentsRange",
        "TestTemplatePropertiesRange",
    ],
)
def test_tool_argument_and_property_printing(name: str) -> None:
    case = INPUTS[name]
    values = Values(messages=case["messages"], tools=case.get("tools"))
    got = execute(parse_template(case["template"]), values)
    expected = case.get("expected", case.get("output_from_harness"))
    assert got == expected
    if "JSON" in name:
        assert not got.startswith("map[")
        json.loads(got)

"""Tool calls found in model output by the template's convention (``ocillm.server.toolcalls``).

The round-trip tests use real templates (qwen2.5, llama 3.1/3.2, mistral-nemo, from the test
Modelfile corpus): a conversation ending in an assistant tool call is rendered with the
template, the text the template wrote for the call is cut out, and that text, fed to the parser
in small pieces as a model would stream it, must give back the same calls.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ocillm.modelfile import parse_modelfile
from ocillm.server.models import TemplateChoice
from ocillm.server.toolcalls import (
    ToolCall,
    ToolCallParser,
    new_call_id,
    parser_for,
    tool_call_tag,
)
from ocillm.template import render_prompt

CORPUS = Path(__file__).resolve().parent / "corpus" / "modelfiles"
QWEN = "023_covercash2-qwen25-show"
LLAMA31 = "019_covercash2-llama31-show"
LLAMA32 = "020_covercash2-llama32-show"
MISTRAL = "021_covercash2-mistral-nemo-show"


def template(name: str) -> str:
    text = parse_modelfile((CORPUS / f"{name}.Modelfile").read_text(encoding="utf-8")).template
    assert text is not None
    return text


def tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"the {name} tool",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }


TOOLS = [tool("get_weather"), tool("get_time")]
CALLS = [
    {"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}},
    {"function": {"name": "get_time", "arguments": {"zone": {"name": "UTC", "dst": False}}}},
]


def feed(parser: ToolCallParser, text: str, size: int = 3) -> tuple[list[ToolCall], str]:
    calls: list[ToolCall] = []
    content = ""
    for i in range(0, len(text), size):
        got, shown = parser.add(text[i : i + size])
        calls += got
        content += shown
    return calls, content + parser.finish()


def written_call(template_text: str, calls: list[dict[str, Any]]) -> str:
    """What the template writes for an assistant turn made of ``calls``: the part of the
    rendering that differs from the same conversation ending in a text answer instead."""
    user = {"role": "user", "content": "What is the weather?"}
    text = render_prompt(
        template_text, messages=[user, {"role": "assistant", "content": "§"}], tools=TOOLS
    )
    turn = {"role": "assistant", "content": "", "tool_calls": calls}
    called = render_prompt(template_text, messages=[user, turn], tools=TOOLS)
    start = 0
    while start < min(len(text), len(called)) and text[start] == called[start]:
        start += 1
    end = 0
    while end < min(len(text), len(called)) - start and text[-1 - end] == called[-1 - end]:
        end += 1
    return called[start : len(called) - end]


# --- the tag ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tag"),
    [(QWEN, "<tool_call>"), (LLAMA31, "{"), (LLAMA32, "{"), (MISTRAL, "[TOOL_CALLS] [")],
)
def test_tag_of_real_templates(name: str, tag: str) -> None:
    assert tool_call_tag(TemplateChoice("go", template(name))) == tag


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("", "{"),
        ("{{ .Prompt }}", "{"),
        ("{{ if .ToolCalls }}{{ end }}", "{"),
        ("{{ if .ToolCalls }}[{{ range .ToolCalls }}{{ . }}{{ end }}]{{ end }}", "["),
        ("{{ if .ToolCalls }}\n  [ {{ range .ToolCalls }}{{ . }}{{ end }}]{{ end }}", "["),
        ("{{ if .ToolCalls }}{{ range .ToolCalls }}{{ . }}{{ end }}]{{ end }}", "{"),
        ("{{ if .ToolCalls }}  {{ range .ToolCalls }}\r\n{{ . }}{{ end }}{{ end }}", "{"),
        (
            "{{ if .ToolCalls }}{{ range .ToolCalls }}<call>"
            '{"name": "{{ .Function.Name }}"}</call>{{ end }}{{ end }}',
            "<call>",
        ),
        ("{{ if .ToolCalls }}Action: ```json\n{{ end }}", "Action: ```json"),
        ("{{ if .ToolCalls }}A{{ if .X }}B{{ end }}C{{ end }}", "A"),
        ("{{ if .ToolCalls }}{{ .Content }}<call>{{ end }}", "{"),  # an action comes first
        (
            '{{ range .Messages }}{{ if eq .Role "x" }}{{ else if .ToolCalls }}'
            "<<CALLS>>{{ end }}{{ end }}",
            "<<CALLS>>",
        ),
        ("{{ if .Tools }}{{ end }", "{"),  # does not parse: JSON objects
    ],
)
def test_tag_rules(text: str, tag: str) -> None:
    assert tool_call_tag(TemplateChoice("go", text)) == tag


def test_tag_of_jinja_chat_templates() -> None:
    qwen_like = (
        "{% for tool_call in message.tool_calls %}"
        '{{- \'<tool_call>\\n{"name": "\' + tool_call.name }}{% endfor %}'
    )
    assert tool_call_tag(TemplateChoice("jinja", qwen_like)) == "<tool_call>"
    mistral_like = "{% if message.tool_calls %}[TOOL_CALLS][{% endif %}"
    assert tool_call_tag(TemplateChoice("jinja", mistral_like)) == "[TOOL_CALLS]"
    chatml = "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}"
    assert tool_call_tag(TemplateChoice("jinja", chatml)) == "{"


# --- round trips through real templates -------------------------------------------------------


@pytest.mark.parametrize("name", [QWEN, LLAMA31, MISTRAL])
@pytest.mark.parametrize("size", [1, 4, 1000])
def test_calls_written_by_a_template_parse_back(name: str, size: int) -> None:
    text = template(name)
    calls = CALLS
    written = written_call(text, calls)
    assert "get_weather" in written
    parser = parser_for(TemplateChoice("go", text), TOOLS)
    assert parser is not None
    got, content = feed(parser, written, size)
    assert [(c.name, c.arguments, c.index) for c in got] == [
        (c["function"]["name"], c["function"]["arguments"], i) for i, c in enumerate(calls)
    ]
    assert content == ""


def test_qwen_text_before_the_call_is_content() -> None:
    parser = ToolCallParser(TOOLS, "<tool_call>")
    out = (
        'Let me look. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n'
        "</tool_call>"
    )
    calls, content = feed(parser, out)
    assert content == "Let me look. "
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Oslo"})]


def test_llama_json_that_names_no_tool_is_content() -> None:
    parser = ToolCallParser(TOOLS, "{")
    out = '{"name": "search", "parameters": {"q": "x"}}'
    assert feed(parser, out) == ([], out)


def test_json_tag_needs_the_output_to_start_with_it() -> None:
    parser = ToolCallParser(TOOLS, "{")
    out = 'Sure: {"name": "get_weather", "parameters": {"city": "Rome"}}'
    assert feed(parser, out) == ([], out)
    parser = ToolCallParser(TOOLS, "{")
    calls, content = feed(parser, '  \n{"name": "get_weather", "parameters": {"city": "Rome"}}')
    assert content.strip() == "" and calls[0].arguments == {"city": "Rome"}


# --- streaming details ------------------------------------------------------------------------


def test_a_possible_start_of_the_tag_is_held_back() -> None:
    parser = ToolCallParser(TOOLS, "<tool_call>")
    assert parser.add("Hi <tool") == ([], "Hi ")
    assert parser.add("box>") == ([], "<toolbox>")  # it was not the tag after all
    assert parser.add(" and <") == ([], " and ")
    assert parser.finish() == "<"  # a partial tag at the end is text


def test_a_call_arrives_once_its_object_is_complete() -> None:
    parser = ToolCallParser(TOOLS, "<tool_call>")
    assert parser.add('<tool_call>{"name": "get_weather", "arguments": {"city": "Li') == ([], "")
    calls, content = parser.add('ma"}}</tool_call>')
    assert content == "" and [c.arguments for c in calls] == [{"city": "Lima"}]
    assert parser.finish() == ""


def test_a_partial_tool_name_waits_for_more() -> None:
    tools = [tool("get"), tool("get_weather")]
    parser = ToolCallParser(tools, "<tool_call>")
    assert parser.add('<tool_call>{"name": "get') == ([], "")
    calls, _ = parser.add('_weather", "arguments": {}}</tool_call>')
    assert [c.name for c in calls] == ["get_weather"]


def test_argument_shapes() -> None:
    cases = [
        ('{"name": "get_time", "arguments": "{\\"zone\\": \\"UTC\\"}"}', {"zone": "UTC"}),
        ('{"name": "get_time", "parameters": {"zone": "UTC"}}', {"zone": "UTC"}),
        ('{"get_time": {"zone": "UTC"}}', {"zone": "UTC"}),
        ('{"call": {"name": "get_time", "arguments": {"zone": "UTC"}}}', {"zone": "UTC"}),
        ('{"name": "get_time", "arguments": {}}', {}),
    ]
    for text, arguments in cases:
        parser = ToolCallParser(TOOLS, "{")
        calls, content = feed(parser, text)
        assert [(c.name, c.arguments) for c in calls] == [("get_time", arguments)], text
        assert content == ""


def test_a_call_without_arguments_is_not_a_call() -> None:
    parser = ToolCallParser(TOOLS, "<tool_call>")
    assert feed(parser, '<tool_call>{"name": "get_time"}</tool_call>') == ([], "")


def test_no_tools_no_parser_and_ids_look_like_ollamas() -> None:
    assert parser_for(TemplateChoice("go", template(QWEN)), None) is None
    assert parser_for(TemplateChoice("go", template(QWEN)), []) is None
    ids = {new_call_id() for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"call_[a-z0-9]{8}", i) for i in ids)
    call = ToolCall("get_time", {"zone": "UTC"}, 0, id="call_12345678")
    assert call.native() == {
        "id": "call_12345678",
        "function": {"index": 0, "name": "get_time", "arguments": {"zone": "UTC"}},
    }

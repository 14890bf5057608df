"""Ollama's data model and execution paths, render_prompt, truncation and capabilities."""

from __future__ import annotations

import pytest

from ocillm.errors import TemplateError
from ocillm.template import (
    chat_template_capabilities,
    collate,
    render_prompt,
    tag_images,
    template_capabilities,
    truncate_messages,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get weather",
            "parameters": {
                "type": "object",
                "required": ["location"],
                "properties": {"location": {"type": "string", "description": "City"}},
            },
        },
    }
]
USER = [{"role": "user", "content": "hi"}]
LEGACY = "{{ if .System }}S:{{ .System }} {{ end }}U:{{ .Prompt }} A:{{ .Response }}|"


# ---- messages path -------------------------------------------------------------------------------


def test_messages_path_has_no_prompt_or_suffix_and_null_tools() -> None:
    out = render_prompt("{{ .Prompt }}|{{ .Suffix }}|{{ .Tools }}|{{ .Messages }}", messages=USER)
    assert out.startswith("<no value>|<no value>|null|[0xc")


def test_system_messages_stay_in_messages_and_join_into_system() -> None:
    msgs = [
        {"role": "system", "content": "A"},
        {"role": "system", "content": "B"},
        {"role": "user", "content": "u"},
    ]
    text = "{{ .System }}|{{ range .Messages }}{{ .Role }}={{ .Content }};{{ end }}"
    assert render_prompt(text, messages=msgs) == "A\n\nB|system=A\n\nB;user=u;"


def test_a_message_prints_as_a_go_struct() -> None:
    assert (
        render_prompt("{{ range .Messages }}{{ . }}{{ end }}", messages=USER)
        == "{user hi  [] []  }"
    )


def test_tools_print_as_json_and_function_as_go_struct() -> None:
    text = "{{ .Messages | len }}{{ range .Tools }}|{{ . }}|{{ .Function }}|{{ json .Function }}{{ end }}"
    out = render_prompt(text, messages=USER, tools=TOOLS).split("|")
    assert out[1] == (
        '{"type":"function","function":{"name":"get_weather","description":"Get weather",'
        '"parameters":{"type":"object","required":["location"],'
        '"properties":{"location":{"type":"string","description":"City"}}}}}'
    )
    # Ollama <= fb30760 (issue #14601): no String() on templateToolFunction
    assert out[2] == (
        "{get_weather Get weather {object <nil> <nil> [location] "
        '{"location":{"type":"string","description":"City"}}}}'
    )
    assert out[3].startswith('{"name":"get_weather","description":"Get weather","parameters":')


def test_tool_property_prints_as_go_struct_and_ranges_in_key_order() -> None:
    text = (
        "{{ .Messages | len }}{{ range .Tools }}{{ range $k, $p := .Function.Parameters.Properties }}"
        "{{ $k }}={{ $p }};{{ $p.Type }}{{ end }}{{ .Function.Parameters.Required }}{{ end }}"
    )
    assert render_prompt(text, messages=USER, tools=TOOLS) == (
        "1location={[] string <nil> City [] <nil> []};string[location]"
    )


def test_tool_call_arguments_print_as_sorted_json_with_go_numbers() -> None:
    msgs = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "f", "arguments": {"z": 1, "a": "<b>", "n": 1000000}}}
            ],
        }
    ]
    text = "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Name }} {{ .Function.Arguments }} {{ .Function.Arguments.n }}{{ end }}{{ end }}"
    assert render_prompt(text, messages=msgs) == 'f {"a":"\\u003cb\\u003e","n":1000000,"z":1} 1e+06'


def test_tool_calls_are_false_when_absent() -> None:
    text = "{{ range .Messages }}{{ if .ToolCalls }}calls{{ else }}none{{ end }}{{ end }}"
    assert render_prompt(text, messages=USER) == "none"


@pytest.mark.parametrize(
    ("think", "expected"),
    [
        (None, "false||false"),
        (False, "false||true"),
        (True, "true|medium|true"),
        ("high", "true|high|true"),
    ],
)
def test_think_values(think: bool | str | None, expected: str) -> None:
    text = "{{ .Messages | len }}{{ .Think }}|{{ .ThinkLevel }}|{{ .IsThinkSet }}"
    assert render_prompt(text, messages=[], think=think) == "0" + expected


# ---- fill in the middle ---------------------------------------------------------------------------


def test_prompt_and_suffix_take_the_fim_path_even_for_messages_templates() -> None:
    text = "{{ if .Messages }}M{{ end }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{ .System }}"
    assert render_prompt(text, prompt="def f(", suffix="return 1") == (
        "<PRE> def f( <SUF>return 1 <MID><no value>"
    )


# ---- legacy path ---------------------------------------------------------------------------------


def test_legacy_templates_get_response_appended_and_render_per_turn() -> None:
    text = "[INST] {{ .Prompt }} [/INST]"
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert render_prompt(text, messages=msgs) == "[INST] a [/INST]b[INST] c [/INST]"


def test_legacy_drops_a_turn_answered_by_a_tool_call() -> None:
    msgs = [
        {"role": "user", "content": "A"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]},
        {"role": "tool", "content": "r"},
        {"role": "user", "content": "B"},
    ]
    assert render_prompt(LEGACY, messages=msgs) == "U:B A:"


def test_legacy_several_system_messages_are_separate_turns() -> None:
    msgs = [
        {"role": "system", "content": "s1"},
        {"role": "user", "content": "u1"},
        {"role": "system", "content": "s2"},
        {"role": "user", "content": "u2"},
    ]
    assert render_prompt(LEGACY, messages=msgs) == "S:s1 U:u1 A:|S:s2 U:u2 A:"


def test_legacy_trailing_assistant_message_is_left_open() -> None:
    msgs = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "My name is"}]
    assert render_prompt(LEGACY, messages=msgs) == "U:Q A:My name is"


def test_legacy_final_execution_has_no_custom_functions() -> None:
    with pytest.raises(TemplateError, match='"currentDate" is not a defined function'):
        render_prompt("{{ .Prompt }} {{ currentDate }}", messages=USER)


# ---- what the server builds ----------------------------------------------------------------------


ROLES = "{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}"


def test_chat_prepends_model_system_unless_request_starts_with_system() -> None:
    assert render_prompt(ROLES, system="SYS", messages=USER) == "system:SYS;user:hi;"
    own = [{"role": "system", "content": "own"}, *USER]
    assert render_prompt(ROLES, system="SYS", messages=own) == "system:own;user:hi;"


def test_chat_puts_model_messages_before_request_messages() -> None:
    model = [{"role": "assistant", "content": "m"}]
    assert render_prompt(ROLES, messages=USER, model_messages=model) == "assistant:m;user:hi;"


def test_generate_appends_the_prompt_as_a_user_message() -> None:
    out = render_prompt(
        ROLES, system="S", prompt="p", model_messages=[{"role": "user", "content": "m"}]
    )
    assert out == "system:S;user:m\n\np;"


def test_collate_merges_same_role_but_never_tool() -> None:
    system, msgs = collate(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "tool", "content": "1"},
            {"role": "tool", "content": "2"},
        ]
    )
    assert system == ""
    assert [m["content"] for m in msgs] == ["a\n\nb", "1", "2"]


def test_tag_images() -> None:
    msgs = [
        {"role": "user", "content": "look", "images": ["AAAA"]},
        {"role": "user", "content": "and [img] here", "images": ["BBBB", "CCCC"]},
    ]
    tagged, media = tag_images(msgs)
    assert [m["content"] for m in tagged] == ["[img-0]look", "[img-2]and [img-1] here"]
    assert media == ["AAAA", "BBBB", "CCCC"]


# ---- truncation ----------------------------------------------------------------------------------


def words(text: str) -> int:
    return len(text.split())


CONTENT = "{{ range .Messages }}{{ .Content }} {{ end }}"
CONVERSATION = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "a b c"},
    {"role": "assistant", "content": "d e f"},
    {"role": "user", "content": "g h"},
]


def test_truncation_keeps_everything_that_fits() -> None:
    assert truncate_messages(CONTENT, CONVERSATION, num_ctx=100, count_tokens=words) == CONVERSATION


def test_truncation_keeps_system_and_newest_messages() -> None:
    kept = truncate_messages(CONTENT, CONVERSATION, num_ctx=6, count_tokens=words)
    assert [m["content"] for m in kept] == ["sys", "d e f", "g h"]


def test_truncation_always_keeps_the_last_message() -> None:
    kept = truncate_messages(CONTENT, CONVERSATION, num_ctx=1, count_tokens=words)
    assert [m["content"] for m in kept] == ["sys", "g h"]


def test_truncation_counts_images() -> None:
    msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": "b", "images": ["x"]}]
    kept = truncate_messages(CONTENT, msgs, num_ctx=10, count_tokens=words, image_tokens=768)
    assert [m["content"] for m in kept] == ["b"]


# ---- capabilities --------------------------------------------------------------------------------


def test_capabilities_of_go_templates() -> None:
    assert template_capabilities("{{ .Prompt }}") == {"completion"}
    assert template_capabilities("{{ .Tools }}{{ .Suffix }}") == {"completion", "tools", "insert"}
    thinking = (
        "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
        "{{ .Content }}{{ end }}"
    )
    assert template_capabilities(thinking) == {"completion", "thinking"}
    # .Thinking outside a range over .Messages does not count
    assert template_capabilities("<think>{{ .Thinking }}</think>") == {"completion"}


def test_capabilities_of_jinja_chat_templates() -> None:
    assert chat_template_capabilities("{{ messages }}") == {"completion"}
    assert chat_template_capabilities("{% if tools %}{% endif %}<think></think>") == {
        "completion",
        "tools",
        "thinking",
    }


def test_capabilities_reject_a_broken_template() -> None:
    with pytest.raises(TemplateError):
        template_capabilities("{{ if }}")

"""The Go text/template engine: syntax, control flow, functions, printing, errors, sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from ocillm.errors import TemplateError
from ocillm.template import Limits, parse_template
from ocillm.template.ollama_types import convert_tools


def render(text: str, data: Any = None, **kw: Any) -> str:
    return parse_template(text).execute({} if data is None else data, **kw)


# ---- text, trim markers, comments ----------------------------------------------------------------


def test_text_without_actions_is_copied_verbatim() -> None:
    assert render("plain\ttext\n\n") == "plain\ttext\n\n"


def test_trim_markers_remove_adjacent_whitespace() -> None:
    assert render("a \n\t {{- 1 -}} \n b") == "a1b"
    assert render("a {{- 1 }} b") == "a1 b"
    assert render("a {{ 1 -}} b") == "a 1b"


def test_dash_without_space_is_a_number_not_a_trim_marker() -> None:
    assert render("a {{-3}} b") == "a -3 b"


def test_comments_print_nothing_and_may_trim() -> None:
    assert render("x{{/* note */}}y") == "xy"
    assert render("x  {{- /* note */ -}}  y") == "xy"
    assert render("{{/* multi\nline */}}z") == "z"


def test_single_brace_is_text() -> None:
    assert render("{ a } {{ 1 }} }") == "{ a } 1 }"


# ---- values and printing -------------------------------------------------------------------------


def test_missing_key_prints_no_value_and_is_false() -> None:
    assert render("{{ .Nope }}|{{ if .Nope }}t{{ else }}f{{ end }}") == "<no value>|f"


def test_go_formatting_of_composites() -> None:
    data = {"L": ["a", 1, None, True], "M": {"b": 2, "a": [1, 2]}, "E": []}
    assert render("{{ .L }}", data) == "[a 1 <nil> true]"
    assert render("{{ .M }}", data) == "map[a:[1 2] b:2]"
    assert render("{{ .E }}", data) == "[]"


def test_go_formatting_of_floats() -> None:
    data = {"a": 1.0, "b": 1.5, "c": 1e6, "d": 123456.0, "e": 1e-5, "f": 0.0001}
    assert (
        render("{{.a}} {{.b}} {{.c}} {{.d}} {{.e}} {{.f}}", data)
        == "1 1.5 1e+06 123456 1e-05 0.0001"
    )


def test_constants() -> None:
    assert render("{{ 42 }} {{ -3 }} {{ 1.5 }} {{ 0x1F }} {{ 0o17 }} {{ 1e3 }} {{ 'a' }}") == (
        "42 -3 1.5 31 15 1000 97"
    )
    assert render('{{ "a\\tb" }}|{{ `raw\\n` }}|{{ true }}|{{ false }}') == "a\tb|raw\\n|true|false"


def test_field_chains_and_map_keys() -> None:
    data = {"A": {"B": {"C": "deep"}}, "lower": "ok"}
    assert render("{{ .A.B.C }} {{ .lower }}", data) == "deep ok"
    assert render("{{ with .A }}{{ .B.C }}{{ end }}", data) == "deep"


def test_dollar_is_the_root_inside_range() -> None:
    assert render("{{ range .L }}{{ $.X }}{{ . }}{{ end }}", {"L": [1, 2], "X": "-"}) == "-1-2"


def test_parenthesised_pipeline_and_chain() -> None:
    assert render("{{ (index .L 0).Name }}", {"L": [{"Name": "n"}]}) == "n"
    assert render("{{ (len .L) }}", {"L": [1, 2, 3]}) == "3"


# ---- variables -----------------------------------------------------------------------------------


def test_variable_declaration_assignment_and_scope() -> None:
    text = "{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}{{ $x = 3 }}{{ $x }}"
    assert render(text) == "213"


def test_assignment_inside_range_is_visible_after_it() -> None:
    text = '{{ $s := "" }}{{ range .L }}{{ $s = printf "%s%v" $s . }}{{ end }}{{ $s }}'
    assert render(text, {"L": [1, 2, 3]}) == "123"


def test_undefined_variable_is_a_parse_error() -> None:
    with pytest.raises(TemplateError, match='undefined variable "\\$y"'):
        parse_template("{{ $y }}")


# ---- control flow --------------------------------------------------------------------------------


def test_if_else_if_else() -> None:
    text = '{{ if eq .R "a" }}A{{ else if eq .R "b" }}B{{ else }}C{{ end }}'
    assert [render(text, {"R": r}) for r in "abc"] == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        (0, False),
        (1, True),
        (0.0, False),
        ("", False),
        ("x", True),
        ([], False),
        ([0], True),
        ({}, False),
        ({"a": 1}, True),
        (None, False),
        (False, False),
        (True, True),
    ],
)
def test_go_truthiness(value: Any, truth: bool) -> None:
    assert render("{{ if .V }}t{{ else }}f{{ end }}", {"V": value}) == ("t" if truth else "f")


def test_range_over_slice_with_index_and_else() -> None:
    text = "{{ range $i, $v := .L }}{{ $i }}={{ $v }};{{ else }}empty{{ end }}"
    assert render(text, {"L": ["a", "b"]}) == "0=a;1=b;"
    assert render(text, {"L": []}) == "empty"
    assert render(text, {}) == "empty"


def test_range_with_one_variable_gets_the_element() -> None:
    assert render("{{ range $v := .L }}{{ $v }}{{ end }}", {"L": ["x", "y"]}) == "xy"


def test_range_over_map_is_in_sorted_key_order() -> None:
    text = "{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}"
    assert render(text, {"M": {"z": 1, "a": 2, "m": 3}}) == "a=2;m=3;z=1;"


def test_range_over_int() -> None:
    assert render("{{ range 3 }}{{ . }}{{ end }}") == "012"


def test_break_and_continue() -> None:
    text = "{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}"
    assert render(text, {"L": [1, 2, 3, 4, 5]}) == "13"


def test_break_outside_range_is_a_parse_error() -> None:
    with pytest.raises(TemplateError, match="outside"):
        parse_template("{{ break }}")


def test_with_else_with() -> None:
    text = "{{ with .A }}a{{ . }}{{ else with .B }}b{{ . }}{{ else }}none{{ end }}"
    assert render(text, {"A": 1}) == "a1"
    assert render(text, {"A": 0, "B": 7}) == "b7"
    assert render(text, {}) == "none"


def test_define_template_and_block() -> None:
    text = (
        '{{ define "T" }}[{{ . }}]{{ end }}{{ template "T" .X }}{{ block "B" 5 }}<{{ . }}>{{ end }}'
    )
    assert render(text, {"X": "hi"}) == "[hi]<5>"


def test_template_calls_do_not_inherit_variables() -> None:
    with pytest.raises(TemplateError, match="undefined variable"):
        parse_template('{{ define "T" }}{{ $x }}{{ end }}{{ $x := 1 }}{{ template "T" }}')


def test_unknown_template_is_an_execution_error() -> None:
    with pytest.raises(TemplateError, match='template "nope" not defined'):
        render('{{ template "nope" . }}')


def test_pipelines_pass_the_value_as_last_argument() -> None:
    assert render('{{ .X | printf "%s!" }} {{ "abc" | len }}', {"X": "v"}) == "v! 3"


# ---- functions -----------------------------------------------------------------------------------


def test_and_or_not_return_operands_and_short_circuit() -> None:
    assert render('{{ and 1 0 2 }} {{ or 0 "" "x" }} {{ not 0 }} {{ and 1 2 }}') == "0 x true 2"
    # the failing index is never evaluated
    assert render("{{ or 1 (index .L 9) }}", {"L": []}) == "1"


def test_comparisons() -> None:
    assert render(
        '{{ eq 1 2 1 }} {{ ne "a" "b" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 2.5 3.5 }}'
    ) == ("true true true true true false")
    with pytest.raises(TemplateError, match="incompatible types for comparison"):
        render('{{ eq 1 "a" }}')


def test_len_index_slice() -> None:
    data = {"L": [1, 2, 3], "M": {"a": "A"}}
    assert render('{{ len "héllo" }} {{ len .L }} {{ len .M }}', data) == "6 3 1"
    assert (
        render('{{ index .L 1 }} {{ index .M "a" }} {{ index .M "zz" }}', data) == "2 A <no value>"
    )
    assert (
        render('{{ slice "hello" 1 3 }} {{ slice .L 1 }} {{ slice .L 0 2 }}', data)
        == "el [2 3] [1 2]"
    )
    with pytest.raises(TemplateError, match="index out of range: 5"):
        render("{{ index .L 5 }}", data)


def test_print_println_printf() -> None:
    assert render('{{ print 1 2 "a" "b" 3 }}') == "1 2ab3"
    assert render('{{ println 1 "a" }}') == "1 a\n"
    data = {"L": [1, 2]}
    assert render('{{ printf "%05.1f|%x|%q|%v|%-3d|%t" 3.14159 255 "s" .L 7 true }}', data) == (
        '003.1|ff|"s"|[1 2]|7  |true'
    )
    assert render('{{ printf "%d" "x" }}') == "%!d(string=x)"
    assert render('{{ printf "%s %s" "a" }}') == "a %!s(MISSING)"


def test_escapers() -> None:
    assert render("{{ html \"<a href='x'>&</a>\" }}") == "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
    assert render('{{ js "it\'s <b>" }}') == "it\\'s \\u003Cb\\u003E"
    assert render('{{ urlquery "a b&c" }}') == "a+b%26c"


def test_json_is_go_encoding_json() -> None:
    data = {"M": {"b": [1.5, None, True], "a": "<&>"}}
    assert render("{{ json .M }}", data) == '{"a":"\\u003c\\u0026\\u003e","b":[1.5,null,true]}'
    assert render("{{ json .Nope }}") == "null"


def test_to_typescript_type() -> None:
    tools = convert_tools(
        [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "a": {"type": "string"},
                            "b": {"type": ["integer", "null"]},
                            "c": {"anyOf": [{"type": "array"}, {"type": "object"}]},
                            "d": {},
                        },
                    },
                },
            }
        ]
    )
    text = "{{ range .T }}{{ range $k, $p := .Function.Parameters.Properties }}{{ $k }}:{{ toTypeScriptType $p }};{{ end }}{{ end }}"
    assert (
        render(text, {"T": tools})
        == "a:string;b:number | null;c:any[] | Record<string, any>;d:any;"
    )
    assert render('{{ toTypeScriptType "x" }}') == "any"


def test_current_date_has_iso_format() -> None:
    out = render("{{ currentDate }}|{{ yesterdayDate }}")
    today, yesterday = out.split("|")
    assert len(today) == 10 and today[4] == "-" and today[7] == "-"
    assert yesterday < today


def test_unknown_function_is_a_parse_error_with_position() -> None:
    with pytest.raises(TemplateError) as info:
        parse_template("ok\n  {{ nosuch 1 }}")
    assert info.value.line == 2
    assert info.value.column == 6
    assert 'function "nosuch" not defined' in info.value.message


# ---- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("{{ .Prompt ", "unclosed action", 1),
        ("a\n{{ if .X }}unterminated", "unexpected EOF", 2),
        ("{{ end }}", "unexpected", 1),
        ("x\ny\n{{ if }}", "missing value", 3),
        ('{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}', "multiple definition", 1),
    ],
)
def test_parse_errors_carry_line_and_column(text: str, message: str, line: int) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(text, "Modelfile TEMPLATE")
    assert message in info.value.message
    assert info.value.line == line
    assert info.value.column > 0
    assert info.value.name == "Modelfile TEMPLATE"
    assert str(info.value).startswith(f"Modelfile TEMPLATE:{line}:")


def test_execution_errors_name_the_node() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field B in type string"):
        render("{{ .A.B }}", {"A": "str"})
    with pytest.raises(TemplateError, match="nil pointer evaluating interface"):
        render("{{ .A.B }}", {"A": None})


# ---- sandbox -------------------------------------------------------------------------------------


def test_only_the_data_model_is_reachable() -> None:
    class Secret:
        password = "hunter2"

    with pytest.raises(TemplateError, match="can't evaluate field"):
        render("{{ .S.password }}", {"S": Secret()})
    with pytest.raises(TemplateError):
        render("{{ .S.__class__ }}", {"S": "x"})


def test_range_iterations_are_bounded() -> None:
    with pytest.raises(TemplateError, match="iterations"):
        render(
            "{{ range .L }}{{ range $.L }}x{{ end }}{{ end }}",
            {"L": list(range(100))},
            limits=Limits(max_iterations=1000),
        )


def test_recursion_depth_is_bounded() -> None:
    text = '{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}'
    with pytest.raises(TemplateError, match="maximum template depth"):
        render(text)


def test_output_size_is_bounded() -> None:
    with pytest.raises(TemplateError, match="exceeds"):
        render(
            "{{ range .L }}{{ $.S }}{{ end }}",
            {"L": list(range(100)), "S": "x" * 1000},
            limits=Limits(max_output=10_000),
        )


def test_parsed_templates_are_cached() -> None:
    assert parse_template("{{ .A }}cached") is parse_template("{{ .A }}cached")


def test_the_packaged_lark_grammar_is_the_parser() -> None:
    from importlib import resources

    from ocillm.template.parser import grammar_parser

    grammar = resources.files("ocillm") / "grammar" / "gotemplate.lark"
    assert grammar.is_file()
    names = {t.name for t in grammar_parser().terminals}
    assert {"TEXT", "LD_TRIM", "RD_TRIM", "END_OPEN", "ELSE_OPEN", "FIELD"} <= names


def test_execute_accepts_any_mapping() -> None:
    from types import MappingProxyType

    tmpl = parse_template("{{ .A }}-{{ .B.C }}")
    assert tmpl.execute(MappingProxyType({"A": 1, "B": MappingProxyType({"C": "c"})})) == "1-c"

"""The Modelfile parser against the test corpus (``tests/corpus``): Ollama's own parser tests,
synthetic edge cases and 58 real Modelfiles, every expectation produced by Ollama's Go parser."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ocillm.errors import ModelfileError
from ocillm.modelfile import (
    Message,
    format_commands,
    lint_modelfile,
    parse_commands,
    parse_modelfile,
    render_modelfile,
)

CORPUS = Path(__file__).resolve().parent / "corpus"
MODELFILES = CORPUS / "modelfiles"


def _load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CORPUS / "parser-cases.json").read_text("utf-8"))
    extra = json.loads((CORPUS / "parser-extra-cases.json").read_text("utf-8"))
    return cases + list(extra["cases"])


CASES = _load_cases()
SOURCES = list(csv.DictReader((MODELFILES / "SOURCES.tsv").open(encoding="utf-8"), delimiter="\t"))


def _input(case: dict[str, Any]) -> bytes | str:
    if "input_base64" in case:
        return base64.b64decode(case["input_base64"])
    text: str = case["input"]
    return text


def _go_message(error: str) -> str:
    """Ollama's error without its "(line N): " prefix; ours carries file:line:col instead."""
    return re.sub(r"^\(line \d+\): ", "", error).rstrip()


def _expected(file: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (MODELFILES / "expected" / file.replace(".Modelfile", ".json")).read_text("utf-8")
    )
    return data


def test_corpus_is_complete() -> None:
    assert len(CASES) == 86 + 51
    assert len(SOURCES) == 58
    assert sum(r["expect_parser"] == "accept" for r in SOURCES) == 50


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parser_case(case: dict[str, Any]) -> None:
    data = _input(case)
    if case["expect"] == "ok":
        commands = parse_commands(data)
        assert [[c.name, c.args] for c in commands] == case["commands"]
        # Our rendering of the raw commands is byte-identical to Go's Modelfile.String().
        assert format_commands(commands) == case["string"]
        return
    with pytest.raises(ModelfileError) as info:
        parse_commands(data)
    err = info.value
    assert err.message.startswith(_go_message(case["error"]))
    go_line = case.get("error_line")
    if go_line is not None and "\r" not in case["input"]:
        # Ollama counts the line break that triggered an error as already passed.
        assert err.line in (go_line, go_line - 1)
    if case.get("error_kind") == "errMissingFrom":
        assert err.line == 0 and str(err) == "Modelfile: no FROM line"
    else:
        assert err.line >= 1 and err.column >= 1


CREATE_CASES = [c for c in CASES if "create_request" in c]


@pytest.mark.parametrize("case", CREATE_CASES, ids=[c["name"] for c in CREATE_CASES])
def test_create_request_case(case: dict[str, Any]) -> None:
    """Ollama's TestCreateRequest expectations, mapped onto Modelfile fields."""
    m = parse_modelfile(_input(case))
    want = case["create_request"]
    assert m.froms == [want["from"]]
    assert m.template == want.get("template")
    assert m.system == want.get("system")
    assert m.licenses == want.get("license", [])
    assert m.parameters == want.get("parameters", {})
    assert m.messages == [Message(**msg) for msg in want.get("messages", [])]
    for name, go_type in (case.get("create_request_param_go_types") or {}).items():
        assert isinstance(m.parameters[name], float if go_type.startswith("float") else int)


@pytest.mark.parametrize("row", SOURCES, ids=[r["file"][:3] for r in SOURCES])
def test_real_modelfile(row: dict[str, str]) -> None:
    data = (MODELFILES / row["file"]).read_bytes()
    expected = _expected(row["file"])
    if row["expect_parser"] == "reject":
        assert expected["expect"] == "error"
        with pytest.raises(ModelfileError) as info:
            parse_commands(data, filename=row["file"])
        assert info.value.message.startswith(_go_message(expected["error"]))
        assert str(info.value).startswith(row["file"])
        assert lint_modelfile(data) != []
        return
    commands = parse_commands(data)
    assert [[c.name, c.args] for c in commands] == expected["commands"]
    assert len(commands) == int(row["n_commands"])
    assert format_commands(commands) == expected["string"]


CREATE_FAILS = {
    "014": "unknown parameter 'grammar'",
    "034": "requires must be a valid semver (e.g. 0.14.0)",
    "035": "invalid float value [1.0 # optional]",
    "036": "invalid int value [<add the context size>]",
}


ACCEPTED = [r for r in SOURCES if r["expect_parser"] == "accept"]


@pytest.mark.parametrize("row", ACCEPTED, ids=[r["file"][:3] for r in ACCEPTED])
def test_real_modelfile_create(row: dict[str, str]) -> None:
    """Accepted files validate unless SOURCES.tsv says `ollama create` would refuse them."""
    data = (MODELFILES / row["file"]).read_bytes()
    number = row["file"][:3]
    if number in CREATE_FAILS:
        assert row["create_request_outcome"].startswith("error: " + CREATE_FAILS[number])
        with pytest.raises(ModelfileError) as info:
            parse_modelfile(data)
        assert info.value.message.startswith(CREATE_FAILS[number])
        assert lint_modelfile(data)[0].message.startswith(CREATE_FAILS[number])
        return
    assert row["create_request_outcome"].startswith("ok")
    m = parse_modelfile(data)
    commands = parse_commands(data)
    assert m.froms == [c.args for c in commands if c.name == "model"]
    assert lint_modelfile(data) == []
    # Round trip: what we write reads back to the same Modelfile.
    assert parse_modelfile(render_modelfile(m)) == m
    assert parse_modelfile(render_modelfile(m, header="generated by a test")) == m


def test_round_trip_covers_the_accepted_files() -> None:
    valid = 0
    for row in SOURCES:
        if row["expect_parser"] == "accept" and row["file"][:3] not in CREATE_FAILS:
            m = parse_modelfile((MODELFILES / row["file"]).read_bytes())
            assert parse_modelfile(render_modelfile(m)) == m
            valid += 1
    assert valid == 46


def test_crlf_file_keeps_cr_inside_quotes_and_counts_real_lines() -> None:
    data = (MODELFILES / "025_covercash2-llama32-vision-crlf.Modelfile").read_bytes()
    commands = parse_commands(data)
    template = next(c for c in commands if c.name == "template")
    assert "<|end_header_id|>\r\n\r\n" in template.args
    lines = data.decode("utf-8").split("\r\n")
    for c in commands:
        word = "FROM" if c.name == "model" else c.name.upper()
        if c.name not in ("model", "template", "system", "license", "adapter"):
            word = "PARAMETER"
        assert lines[c.line - 1][c.column - 1 :].upper().startswith(word)


def test_show_output_order_and_multiple_froms() -> None:
    data = (MODELFILES / "038_williamrobotma-qwen35-two-from.Modelfile").read_bytes()
    m = parse_modelfile(data)
    assert len(m.froms) == 2
    assert m.froms == [c.args for c in parse_commands(data) if c.name == "model"]

"""Errors point at the right line and column, read well, and lint collects them all."""

from __future__ import annotations

import pytest

from ocillm.errors import ModelfileError
from ocillm.modelfile import lint_modelfile, parse_commands, parse_modelfile

INVALID_COMMAND = 'command must be one of "from", "license", "template", "system", "adapter"'


def _parse_error(text: str | bytes, *, validate: bool = False) -> ModelfileError:
    with pytest.raises(ModelfileError) as info:
        (parse_modelfile if validate else parse_commands)(text)
    return info.value


def test_bad_instruction_points_at_the_word_with_a_caret() -> None:
    err = _parse_error("FROM llama3\n  PROMPT hi\n")
    assert (err.line, err.column) == (2, 3)
    assert err.message.startswith(INVALID_COMMAND)
    assert err.message.endswith("not 'PROMPT'")
    assert str(err).splitlines() == [
        f"Modelfile:2:3: {err.message}",
        "      PROMPT hi",
        "      ^",
    ]


def test_filename_is_the_prefix() -> None:
    with pytest.raises(ModelfileError) as info:
        parse_commands("FROM x\nBAD y\n", filename="models/bot/Modelfile")
    assert str(info.value).startswith("models/bot/Modelfile:2:1: command must be one of")
    assert info.value.filename == "models/bot/Modelfile"


def test_crlf_counts_one_line_per_line_break() -> None:
    # Ollama reports line 3 here (it counts CR and LF separately); the real line is 2.
    err = _parse_error(b"FROM x\r\nBAD y\r\n")
    assert (err.line, err.column) == (2, 1)
    assert err.source_line == "BAD y"


def test_lone_cr_is_a_line_break_too() -> None:
    err = _parse_error("FROM x\rFROM y\rBAD\r")
    assert (err.line, err.column) == (3, 1)
    assert err.message.endswith("not 'BAD'")


def test_instruction_without_value_points_after_the_word() -> None:
    err = _parse_error("FROM x\nSYSTEM\n")
    assert (err.line, err.column) == (2, 7)
    assert "SYSTEM must be followed by a space or tab" in err.message


def test_bad_parameter_name_character() -> None:
    err = _parse_error("FROM x\nPARAMETER num-ctx 4096\n")
    assert (err.line, err.column) == (2, 14)
    assert err.message.startswith("unexpected EOF: num")
    assert "letters, digits and _" in err.message


def test_parameter_without_value() -> None:
    err = _parse_error("FROM x\nPARAMETER temperature\nFROM y\n")
    assert (err.line, err.column) == (2, 22)
    assert err.message.startswith("unexpected EOF: temperature")


def test_bad_role_points_at_the_role() -> None:
    err = _parse_error("FROM x\nMESSAGE User hi\n")
    assert (err.line, err.column) == (2, 9)
    assert err.message == (
        'message role must be one of "system", "user", or "assistant", not \'User\''
    )


def test_unclosed_quote_points_at_the_opening_quote() -> None:
    err = _parse_error('FROM x\nPARAMETER stop </s>\nSYSTEM   """You are\nhelpful.""" ok\n')
    assert (err.line, err.column) == (3, 10)
    assert err.message.startswith("unexpected EOF")
    assert "never closed" in err.message


def test_eof_after_instruction_word() -> None:
    err = _parse_error("FROM x\nADAPTER")
    assert (err.line, err.column) == (2, 8)
    assert err.message.startswith("unexpected EOF")


def test_no_from_line_has_no_position() -> None:
    err = _parse_error("# only a comment\nSYSTEM hi\n")
    assert err.line == 0
    assert str(err) == "Modelfile: no FROM line"


def test_tabs_and_dropped_characters_keep_the_caret_aligned() -> None:
    err = _parse_error("FROM x\n\t\u00a0BAD y\n")
    assert (err.line, err.column) == (2, 2)
    assert err.source_line == " \ufffdBAD y"
    assert str(err).splitlines()[2] == "     ^"
    assert "'\\xa0BAD'" in err.message or "'\xa0'" in err.message


def test_unknown_parameter_points_at_the_name_and_suggests() -> None:
    err = _parse_error("FROM x\nPARAMETER Temperature 0.7\n", validate=True)
    assert (err.line, err.column) == (2, 11)
    assert err.message.startswith("unknown parameter 'Temperature'")
    assert "did you mean 'temperature'" in err.message


def test_bad_value_points_at_the_value() -> None:
    err = _parse_error("FROM x\nPARAMETER  top_k   forty\n", validate=True)
    assert err.message.startswith("unknown parameter ''")  # two spaces: Ollama reads no name
    err = _parse_error("FROM x\nPARAMETER top_k   forty\n", validate=True)
    assert err.message == "invalid int value [forty]"
    assert (err.line, err.column) == (2, 19)


def test_inline_comment_hint() -> None:
    err = _parse_error("FROM x\nPARAMETER temperature 1.0 # warm\n", validate=True)
    assert err.message.startswith("invalid float value [1.0 # warm]")
    assert "not a comment" in err.message


def test_requires_error_position() -> None:
    err = _parse_error("FROM x\n\nREQUIRES >= 0.1.24\n", validate=True)
    assert err.message == "requires must be a valid semver (e.g. 0.14.0)"
    assert (err.line, err.column) == (3, 10)


def test_syntax_error_wins_over_validation_error() -> None:
    err = _parse_error("FROM x\nPARAMETER top_k x\nBAD\n", validate=True)
    assert err.message.startswith(INVALID_COMMAND)
    assert err.line == 3


def test_lint_reports_every_bad_parameter() -> None:
    text = (
        "FROM llama3\n"
        "PARAMETER temperature hot\n"
        "PARAMETER Top_k 1\n"
        "PARAMETER num_ctx 1.5\n"
        "PARAMETER mirostat 1\n"
        "REQUIRES latest\n"
        "PARAMETER use_mmap yes\n"
        "PARAMETER stop </s>\n"
    )
    errors = lint_modelfile(text)
    assert [(e.line, e.message.split(" (")[0]) for e in errors] == [
        (2, "invalid float value [hot]"),
        (3, "unknown parameter 'Top_k'"),
        (4, "invalid int value [1.5]"),
        (6, "requires must be a valid semver"),
        (7, "invalid bool value [yes]"),
    ]
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    assert info.value.message == errors[0].message


def test_lint_without_from_still_validates() -> None:
    errors = lint_modelfile("PARAMETER seed x\n")
    assert [e.message for e in errors] == ["no FROM line", "invalid int value [x]"]


def test_lint_stops_at_the_first_syntax_error() -> None:
    errors = lint_modelfile("FROM x\nPARAMETER seed x\nBAD\nALSO BAD\n")
    assert len(errors) == 1
    assert errors[0].line == 3


def test_lint_of_a_valid_file_is_empty() -> None:
    assert lint_modelfile("FROM x\nPARAMETER mirostat 2\n") == []


def test_errors_are_modelfile_errors_with_status() -> None:
    err = _parse_error("FROM x\nBAD\n")
    assert err.http_status == 400
    assert err.exit_code == 1

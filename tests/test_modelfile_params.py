"""PARAMETER names and values follow Ollama's FormatParams and Go's strconv rules."""

from __future__ import annotations

import pydantic
import pytest

from ocillm.errors import ModelfileError
from ocillm.modelfile import (
    DEPRECATED_PARAMETERS,
    VALID_PARAMETERS,
    Message,
    Modelfile,
    parse_modelfile,
)


def _param(name: str, value: str) -> object:
    return parse_modelfile(f"FROM x\nPARAMETER {name} {value}\n").parameters[name]


def _error(name: str, value: str) -> str:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(f"FROM x\nPARAMETER {name} {value}\n")
    return info.value.message


def test_the_parameter_table() -> None:
    assert len(VALID_PARAMETERS) == 20
    floats = {n for n, t in VALID_PARAMETERS.items() if t is float}
    assert floats == {
        "top_p",
        "min_p",
        "typical_p",
        "temperature",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
    }
    assert VALID_PARAMETERS["use_mmap"] is bool
    assert VALID_PARAMETERS["stop"] is list
    assert VALID_PARAMETERS["main_gpu"] is int
    assert "mirostat" in DEPRECATED_PARAMETERS and "mirostat" not in VALID_PARAMETERS
    assert not DEPRECATED_PARAMETERS & VALID_PARAMETERS.keys()


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4096", 4096),
        ("+5", 5),
        ("-1", -1),
        ("0", 0),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("0000000000000000000000042", 42),
    ],
)
def test_ints(text: str, value: int) -> None:
    got = _param("seed", text)  # any int64: the syntax alone is checked
    assert got == value and type(got) is int


@pytest.mark.parametrize(
    "text",
    ["1.5", "1_000", "0x10", "٣", '" 5"', "9223372036854775808", "1e3", "", "4k", "9" * 5000],
)
def test_bad_ints(text: str) -> None:
    shown = text.strip('"')
    assert _error("num_ctx", text) == f"invalid int value [{shown}]"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.7", 0.7),
        ("1", 1.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("-0.25", -0.25),
        ("1e-5", 1e-05),
        ("1_000.5", 1000.5),
        ("0x1p-2", 0.25),
        ("0.123456789", 0.12345679),  # rounded to float32, as Ollama stores it
        ("3.4028235e38", 3.4028235e38),
    ],
)
def test_floats(text: str, value: float) -> None:
    got = _param("presence_penalty", text)  # any finite float32
    assert got == value and type(got) is float


@pytest.mark.parametrize(
    "text", ["hot", ".", "1__0", "1_", "_1", "1e", "0x1", "1e39", "inf", "NaN", "0.7f", "١"]
)
def test_bad_floats(text: str) -> None:
    assert _error("top_p", text) == f"invalid float value [{text}]"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("t", True),
        ("1", True),
        ("false", False),
        ("F", False),
        ("0", False),
    ],
)
def test_bools(text: str, value: bool) -> None:
    assert _param("use_mmap", text) is value


@pytest.mark.parametrize("text", ["yes", "TrUe", "on", "2"])
def test_bad_bools(text: str) -> None:
    assert _error("use_mmap", text) == f"invalid bool value [{text}]"


def test_stop_accumulates_in_order_and_keeps_duplicates() -> None:
    m = parse_modelfile(
        'FROM x\nPARAMETER stop <|eot_id|>\nPARAMETER temperature 1\nPARAMETER stop "a b"\n'
        "PARAMETER stop <|eot_id|>\n"
    )
    assert m.parameters["stop"] == ["<|eot_id|>", "a b", "<|eot_id|>"]
    assert list(m.parameters) == ["stop", "temperature"]


def test_last_scalar_parameter_wins() -> None:
    m = parse_modelfile("FROM x\nPARAMETER seed 1\nPARAMETER seed 2\n")
    assert m.parameters == {"seed": 2}


def test_deprecated_parameters_warn_and_drop() -> None:
    m = parse_modelfile(
        "FROM x\nPARAMETER mirostat 2\nPARAMETER use_mlock true\nPARAMETER top_k 5\n"
    )
    assert m.parameters == {"top_k": 5}
    assert m.warnings == [
        "parameter mirostat is deprecated",
        "parameter use_mlock is deprecated",
    ]


def test_removed_parameters_are_unknown() -> None:
    for name in ("numa", "num_gqa", "tfs_z", "grammar"):
        message = _error(name, "1")
        assert message.startswith(f"unknown parameter '{name}'")
        assert "no longer supports" in message


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("0.14.0", "0.14.0"),
        ("v0.14.0", "0.14.0"),
        ("1", "1"),
        ("1.2", "1.2"),
        ("1.2.3-rc.1+build.05", "1.2.3-rc.1+build.05"),
        ("0.0.0-alpha-1", "0.0.0-alpha-1"),
    ],
)
def test_requires_semver(text: str, stored: str) -> None:
    assert parse_modelfile(f"FROM x\nREQUIRES {text}\n").requires == stored


@pytest.mark.parametrize(
    "text", [">= 0.1.24", "latest", "01.2.3", "1.2.3-01", "V1.0.0", "1.2-rc1", "1.2.3.4", "vv1"]
)
def test_requires_not_semver(text: str) -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(f"FROM x\nREQUIRES {text}\n")
    assert info.value.message == "requires must be a valid semver (e.g. 0.14.0)"


def test_all_instructions_fold_into_fields() -> None:
    m = parse_modelfile(
        "from ./model.gguf\n"
        "FROM ./mmproj.gguf\n"
        "adapter ./lora.gguf\n"
        "TEMPLATE first\n"
        "TEMPLATE {{ .Prompt }}\n"
        "SYSTEM You are terse.\n"
        "LICENSE MIT\n"
        'LICENSE """Apache\n2.0"""\n'
        "MESSAGE user Hi\n"
        "MESSAGE assistant Hello: there\n"
        "REQUIRES 0.14.0\n"
        "DRAFT ./draft.gguf\n"
        "RENDERER qwen3\n"
        "PARSER qwen3\n"
    )
    assert m.froms == ["./model.gguf", "./mmproj.gguf"]
    assert m.adapters == ["./lora.gguf"]
    assert m.template == "{{ .Prompt }}"
    assert m.system == "You are terse."
    assert m.licenses == ["MIT", "Apache\n2.0"]
    assert m.messages == [
        Message(role="user", content="Hi"),
        Message(role="assistant", content="Hello: there"),
    ]
    assert (m.requires, m.draft, m.renderer, m.parser) == (
        "0.14.0",
        "./draft.gguf",
        "qwen3",
        "qwen3",
    )


def test_modelfile_equality_ignores_warnings() -> None:
    a = Modelfile(froms=["x"], warnings=["parameter mirostat is deprecated"])
    assert a == Modelfile(froms=["x"])
    assert a != Modelfile(froms=["y"])
    assert a != Modelfile(froms=["x"], system="")


def test_modelfile_built_in_code_is_checked_and_normalised() -> None:
    m = Modelfile(
        froms=["x"],
        parameters={"temperature": 0.123456789, "top_k": 5, "top_p": 1, "stop": "</s>"},
    )
    assert m.parameters == {"temperature": 0.12345679, "top_k": 5, "top_p": 1.0, "stop": ["</s>"]}
    assert m == parse_modelfile(
        "FROM x\nPARAMETER temperature 0.123456789\nPARAMETER top_k 5\n"
        "PARAMETER top_p 1\nPARAMETER stop </s>\n"
    )
    for bad in ({"top_k": 1.5}, {"temperature": "hot"}, {"use_mmap": 1}, {"top_p": 1e39}):
        with pytest.raises(pydantic.ValidationError):
            Modelfile(froms=["x"], parameters=bad)
    with pytest.raises(pydantic.ValidationError):
        Message(role="tool", content="x")
    # Names Ollama does not know are kept: an image from a newer tool must still load.
    assert Modelfile(froms=["x"], parameters={"future_knob": 3}).parameters == {"future_knob": 3}

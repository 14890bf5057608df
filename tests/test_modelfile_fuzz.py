"""Property tests: any input gives commands or a ModelfileError, never another exception, and
the grammar-based parser agrees with a direct rendering of Ollama's state machine."""

from __future__ import annotations

import codecs
import unicodedata

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ocillm.errors import ModelfileError
from ocillm.modelfile import VALID_PARAMETERS, lint_modelfile, parse_commands, parse_modelfile
from ocillm.modelfile.text import decode

# -- an independent model of Ollama's ParseFile (parser/parser.go), char by char ---------------

NIL, NAME, VALUE, PARAM, MSG, COMMENT = range(6)
WORDS = {
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "draft",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
}


def _printable(ch: str) -> bool:
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def _unquote(s: str) -> tuple[str, bool]:
    if s[:3] == '"""':
        return (s[3:-3], True) if len(s) >= 6 and s[-3:] == '"""' else ("", False)
    if s[:1] == '"':
        return (s[1:-1], True) if len(s) >= 2 and s[-1] == '"' else ("", False)
    return s, True


def _alpha(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def reference_parse(text: str) -> list[tuple[str, str]] | tuple[str, str]:
    """Commands, or ("error", kind-and-text) the way Ollama's parser would report them."""
    state, buf, role, name = NIL, "", "", ""
    out: list[tuple[str, str]] = []
    for ch in text:
        space, newline = ch in " \t", ch in "\r\n"
        r: str | None = None
        if state == NIL:
            nxt = COMMENT if ch == "#" else NIL if space or newline else NAME
            r = ch if nxt == NAME else None
        elif state == NAME:
            if _alpha(ch):
                nxt, r = NAME, ch
            elif space:
                nxt = VALUE
            else:
                return ("error", "command")
        elif state == VALUE:
            nxt, r = (NIL if space or newline else VALUE), ch
        elif state in (PARAM, MSG):
            ok = _alpha(ch) or (state == PARAM and ((ch.isascii() and ch.isdigit()) or ch == "_"))
            if ok:
                nxt, r = state, ch
            elif space:
                nxt = VALUE
            else:
                return ("error", "unexpected EOF: " + buf)
        else:
            nxt = NIL if newline else COMMENT
        if nxt != state:
            if state == NAME:
                word = buf.lower()
                if word not in WORDS:
                    return ("error", "command")
                name = "model" if word == "from" else word
                nxt = PARAM if word == "parameter" else MSG if word == "message" else nxt
            elif state == PARAM:
                name = buf
            elif state == MSG:
                if buf not in ("system", "user", "assistant"):
                    return ("error", "role")
                role = buf
            elif state == VALUE:
                value, ok = _unquote(buf.strip(" \t\r\n"))
                if not ok or space:
                    buf += ch
                    continue
                out.append((name, f"{role}: {value}" if role else value))
                role = ""
            buf, state = "", nxt
        if r is not None and _printable(r):
            buf += r
    if state == VALUE:
        value, ok = _unquote(buf.strip(" \t\r\n"))
        if not ok:
            return ("error", "unexpected EOF")
        out.append((name, f"{role}: {value}" if role else value))
    elif state not in (NIL, COMMENT):
        return ("error", "unexpected EOF")
    if not any(n == "model" for n, _ in out):
        return ("error", "no FROM line")
    return out


PIECES = [
    "FROM",
    "from",
    "PARAMETER",
    "parameter",
    "MESSAGE",
    "SYSTEM",
    "TEMPLATE",
    "LICENSE",
    "REQUIRES",
    "Draft",
    "user",
    "system",
    "User",
    "temperature",
    "stop",
    "x",
    "a b",
    "1",
    "_",
    "-",
    ":",
    "é",
    "#",
    " ",
    " ",
    "\t",
    "\n",
    "\n",
    "\r\n",
    "\r",
    '"',
    '"',
    '"""',
    "\u00a0",
    "\x00",
    "\u200b",
    "\ufeff",
    "\x7f",
]
modelfile_like = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


def _agree(text: str) -> None:
    # A leading U+FEFF is a BOM whether it comes as bytes or text.
    expected = reference_parse(decode(text))
    try:
        got = [(c.name, c.args) for c in parse_commands(text)]
    except ModelfileError as err:
        assert isinstance(expected, tuple), (text, expected, err)
        kind = expected[1]
        if kind == "command":
            assert err.message.startswith("command must be one of"), (text, err)
        elif kind == "role":
            assert err.message.startswith("message role must be one of"), (text, err)
        else:
            assert err.message.startswith(kind.rstrip()), (text, kind, err)
        return
    assert got == expected, text


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(modelfile_like)
@example('FROM x\nSYSTEM """a\n""b"""\n')
@example('FROM x\nSYSTEM "\x00""a"""\n')
@example("FROM x\nPARAMETER  temperature 1\n")
@example("\x00FROM x\n")
@example('FROM x\nSYSTEM ""\n"\n')
def test_grammar_agrees_with_the_state_machine(text: str) -> None:
    _agree("FROM m\n" + text)
    _agree(text)


@settings(max_examples=500)
@given(st.text())
def test_arbitrary_text_raises_only_modelfile_error(text: str) -> None:
    _agree(text)
    for call in (parse_commands, parse_modelfile):
        try:
            call(text)
        except ModelfileError as err:
            assert str(err)
    assert all(isinstance(e, ModelfileError) for e in lint_modelfile(text))


BOMS = [b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE]


@settings(max_examples=500)
@given(st.sampled_from(BOMS), st.binary())
def test_arbitrary_bytes_raise_only_modelfile_error(bom: bytes, data: bytes) -> None:
    for call in (parse_commands, parse_modelfile):
        try:
            call(bom + data)
        except ModelfileError as err:
            assert str(err)
    assert all(isinstance(e, ModelfileError) for e in lint_modelfile(bom + data))


@given(modelfile_like, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be"]))
def test_encodings_give_the_same_commands(text: str, encoding: str) -> None:
    text = "FROM m\n" + text.replace("\x00", "")
    data = (
        text.encode(encoding)
        if encoding != "utf-16-be"
        else codecs.BOM_UTF16_BE + text.encode(encoding)
    )
    try:
        want: object = [(c.name, c.args) for c in parse_commands(text)]
    except ModelfileError as err:
        want = err.message
    try:
        got: object = [(c.name, c.args) for c in parse_commands(data)]
    except ModelfileError as err:
        got = err.message
    assert got == want


def test_invalid_utf8_becomes_one_replacement_per_byte() -> None:
    # Go's decoder replaces each bad byte; a truncated sequence is two replacement runes.
    commands = parse_commands(b"FROM x\nSYSTEM a\xe2\x82b\xff\n")
    assert commands[1].args == "a\ufffd\ufffdb\ufffd"


@settings(max_examples=500)
@given(
    st.sampled_from([*VALID_PARAMETERS, "requires"]),
    st.text(alphabet=st.sampled_from(list("0123456789+-._eExXpPinfatrueTF \u0663")), max_size=30)
    | st.text(max_size=30),
)
def test_any_parameter_value_gives_a_value_or_a_modelfile_error(name: str, value: str) -> None:
    line = f"REQUIRES {value}" if name == "requires" else f"PARAMETER {name} {value}"
    try:
        m = parse_modelfile(f"FROM x\n{line}\n")
    except ModelfileError as err:
        assert err.line >= 1
        return
    if name != "requires" and name in m.parameters:
        assert isinstance(m.parameters[name], (int, float, bool, list))

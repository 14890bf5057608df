"""Decoding a Modelfile and mapping offsets to real line/column positions."""

from __future__ import annotations

import bisect
import codecs
import re
import unicodedata

# Stands for every character Ollama drops (see ocillm/grammar/modelfile.lark).
DROPPED = "\x00"

_GO_REPLACE = "ocillm-go-replace"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    # Go's UTF-8 decoder turns each invalid byte into its own U+FFFD; Python's "replace"
    # would merge a truncated sequence into one.
    if not isinstance(err, UnicodeDecodeError):  # pragma: no cover - only used for decoding
        raise err
    return "\ufffd", err.start + 1


codecs.register_error(_GO_REPLACE, _go_replace)


def decode(data: bytes | str) -> str:
    """Bytes to text as Ollama reads them: UTF-8, or UTF-8/UTF-16 LE/BE after a BOM.

    A ``str`` is taken as already decoded (lone surrogates become U+FFFD, as Go would see them).
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if data.startswith(codecs.BOM_UTF16_BE):
        return data[2:].decode("utf-16-be", "replace")
    if data.startswith(codecs.BOM_UTF16_LE):
        return data[2:].decode("utf-16-le", "replace")
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    return data.decode("utf-8", _GO_REPLACE)


def is_print(ch: str) -> bool:
    """Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def mark_dropped(text: str) -> str:
    """Replace each non-printable character except tab, CR and LF with :data:`DROPPED`.

    Offsets are unchanged, so positions in the result are positions in ``text``.
    """
    table = {ord(ch): DROPPED for ch in set(text) if ch not in "\t\r\n" and not is_print(ch)}
    return text.translate(table) if table else text


class LineIndex:
    """Offsets to 1-based (line, column). CRLF, lone CR and LF each end one line."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        return line + 1, offset - self.starts[line] + 1

    def line_text(self, line: int) -> str:
        """The line's text without its line break; tabs and dropped characters made visible
        as one column each so a caret under it lines up."""
        start = self.starts[line - 1]
        end = self.starts[line] if line < len(self.starts) else len(self.text)
        raw = self.text[start:end].rstrip("\r\n")
        return "".join(" " if ch == "\t" else ch if is_print(ch) else "\ufffd" for ch in raw)

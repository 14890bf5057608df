"""Block-style YAML for plain data (dicts, lists, str, int, bool, None), no YAML library.

A string is written plain only when no YAML 1.1 or 1.2 reader could take it for anything but a
string (a letter or ``/`` first, then letters, digits, ``_ . / -``; not a boolean or null word);
every other string is double-quoted: JSON's escapes, which YAML shares, plus a ``\\u``
escape for every BMP character YAML does not allow as it is (YAML pairs no surrogates, so
characters beyond the BMP are written as themselves).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9_./-]*")
_KEEP = ((0x20, 0x7E), (0xA0, 0x2027), (0x202A, 0xD7FF), (0xE000, 0xFEFE), (0xFF00, 0xFFFD))
_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _WORDS:
            return value
        return "".join(map(_escape, json.dumps(value, ensure_ascii=False)))
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _escape(char: str) -> str:
    code = ord(char)
    if code >= 0x10000 or any(lo <= code <= hi for lo, hi in _KEEP):
        return char
    return f"\\u{code:04x}"


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        out: list[str] = []
        for key, item in value.items():
            head = f"{pad}{scalar(str(key))}:"
            if isinstance(item, (Mapping, list, tuple)) and item:
                out.append(head)
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{head} {_inline(item)}")
        return out
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if isinstance(item, (Mapping, list, tuple)) and item:
                nested = _lines(item, indent + 2)
                nested[0] = f"{pad}- {nested[0][indent + 2 :]}"
                out.extend(nested)
            else:
                out.append(f"{pad}- {_inline(item)}")
        return out
    return [pad + scalar(value)]


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return scalar(value)


def dump(value: Mapping[str, Any] | Sequence[Any]) -> str:
    """One YAML document for ``value`` (ending in a newline)."""
    if not value:
        return _inline(value) + "\n"
    return "\n".join(_lines(value, 0)) + "\n"


def dump_all(documents: Iterable[Mapping[str, Any]]) -> str:
    """Several documents, each opened by ``---``, as ``kubectl apply -f`` reads them."""
    return "".join(f"---\n{dump(doc)}" for doc in documents)

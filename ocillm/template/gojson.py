"""Go's ``encoding/json.Marshal``: sorted map keys, struct field order and tags, HTML escaping."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from .gofmt import format_float_json
from .gotypes import NO_VALUE, GoMap, GoSlice, GoStruct, NilPointer, OrderedMap


class MarshalError(ValueError):
    """A value Go's json.Marshal refuses (NaN, infinities, complex numbers, functions)."""


def quote(s: str) -> str:
    """A JSON string as Go writes it: HTML-safe, U+2028/U+2029 escaped."""
    text = json.dumps(s, ensure_ascii=False)
    if any(c in text for c in "<>&\u2028\u2029"):
        text = (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return text


def marshal(value: Any) -> str:
    """json.Marshal(value) as a string; raises :class:`MarshalError` where Go returns an error."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def is_empty(value: Any) -> bool:
    """Go's ``omitempty`` test."""
    if value is None or value is NO_VALUE or isinstance(value, NilPointer):
        return True
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, (str, list, dict, bytes)):
        return len(value) == 0
    return False


def _encode(v: Any, out: list[str]) -> None:
    if v is None or v is NO_VALUE or isinstance(v, NilPointer):
        out.append("null")
    elif isinstance(v, str):
        out.append(quote(v))
    elif isinstance(v, bool):
        out.append("true" if v else "false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise MarshalError(f"json: unsupported value: {v}")
        out.append(format_float_json(v))
    elif isinstance(v, GoStruct):
        custom = getattr(v, "go_json", None)
        if custom is not None:
            out.append(custom())
            return
        _encode_struct(v, out)
    elif isinstance(v, OrderedMap):
        _encode_object(list(v.items()), out)
    elif isinstance(v, GoSlice):
        custom = getattr(v, "go_json", None)
        if custom is not None:
            out.append(custom())
        elif v.nil:
            out.append("null")
        else:
            _encode_array(v, out)
    elif isinstance(v, GoMap) and v.nil:
        out.append("null")
    elif isinstance(v, dict):
        _encode_object(sorted((str(k), x) for k, x in v.items()), out)
    elif isinstance(v, (list, tuple)):
        _encode_array(v, out)
    elif isinstance(v, (bytes, bytearray)):
        out.append('"' + base64.b64encode(bytes(v)).decode("ascii") + '"')
    else:
        raise MarshalError(f"json: unsupported type: {type(v).__name__}")


def _encode_array(items: Any, out: list[str]) -> None:
    out.append("[")
    for i, x in enumerate(items):
        if i:
            out.append(",")
        _encode(x, out)
    out.append("]")


def _encode_object(items: list[tuple[str, Any]], out: list[str]) -> None:
    out.append("{")
    for i, (k, x) in enumerate(items):
        if i:
            out.append(",")
        out.append(quote(k))
        out.append(":")
        _encode(x, out)
    out.append("}")


def _encode_struct(v: GoStruct, out: list[str]) -> None:
    if v.json_fields is None:
        _encode_object(list(v.field_items()), out)
        return
    items = []
    for field, name, omitempty in v.json_fields:
        value = getattr(v, field)
        if omitempty and is_empty(value):
            continue
        items.append((name, value))
    _encode_object(items, out)

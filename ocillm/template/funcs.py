"""Go's builtin template functions, the functions Ollama adds, and Go truthiness/comparison."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import gofmt, gojson
from .gotypes import NO_VALUE, GoStruct, NilPointer, OrderedMap, type_name


class FuncError(Exception):
    """A function call failed; the executor turns it into a TemplateError with the position."""


def truth(v: Any) -> bool:
    """Go's ``template.IsTrue``: zero values, nil and empty containers are false."""
    if v is None or v is NO_VALUE:
        return False
    if isinstance(v, (bool, int, float, complex, str, list, dict, bytes, tuple)):
        return bool(v)
    return not isinstance(v, NilPointer)


# ---- comparison ------------------------------------------------------------------------------------


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    if v is None or v is NO_VALUE:
        return "invalid"
    return "other"


def _nil(v: Any) -> bool:
    return v is None or v is NO_VALUE or isinstance(v, NilPointer)


def _eq2(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        if ("invalid" in (ka, kb) or "other" in (ka, kb)) and (_nil(a) or _nil(b)):
            return _nil(a) and _nil(b)
        if ka != "invalid" and kb != "invalid":
            raise FuncError("incompatible types for comparison")
        return False
    if ka in ("bool", "int", "float", "complex", "string", "invalid"):
        return bool(a == b)
    if _nil(a) or _nil(b):
        return _nil(a) and _nil(b)
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        raise FuncError(f"non-comparable type {gofmt.sprint_value(a)}: {type_name(a)}")
    if isinstance(a, GoStruct) and isinstance(b, GoStruct):
        if a.pointer or b.pointer:
            return a is b
        if type(a) is not type(b):
            raise FuncError("incompatible types for comparison")
        return all(
            _eq2(x, y) for (_, x), (_, y) in zip(a.field_items(), b.field_items(), strict=True)
        )
    return a is b


def eq(arg1: Any, *rest: Any) -> bool:
    if not rest:
        raise FuncError("missing argument for comparison")
    return any(_eq2(arg1, b) for b in rest)


def ne(a: Any, b: Any) -> bool:
    return not _eq2(a, b)


def lt(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
    return bool(a < b)


def le(a: Any, b: Any) -> bool:
    return lt(a, b) or eq(a, b)


def gt(a: Any, b: Any) -> bool:
    return not le(a, b)


def ge(a: Any, b: Any) -> bool:
    return not lt(a, b)


# ---- containers ------------------------------------------------------------------------------------


def length(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode("utf-8"))
    if isinstance(item, (list, dict, bytes, tuple)):
        return len(item)
    if _nil(item):
        raise FuncError("len of nil pointer")
    raise FuncError(f"len of type {type_name(item)}")


def _index_arg(index: Any, cap: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise FuncError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise FuncError(f"index out of range: {index}")
    return index


def index(item: Any, *indexes: Any) -> Any:
    if _nil(item):
        raise FuncError("index of untyped nil")
    for ix in indexes:
        if isinstance(item, (str, list, tuple, bytes)):
            data = item.encode("utf-8") if isinstance(item, str) else item
            x = _index_arg(ix, len(data))
            if x == len(data):
                raise FuncError(f"index out of range: {x}")
            item = data[x]
        elif isinstance(item, dict) and not isinstance(item, OrderedMap):
            if not isinstance(ix, str):
                raise FuncError(f"value has type {type_name(ix)}; should be string")
            item = item.get(ix)
        elif _nil(item):
            raise FuncError("index of nil pointer")
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def slice_(item: Any, *indexes: Any) -> Any:
    if _nil(item):
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        data = item.encode("utf-8")
    elif isinstance(item, (list, tuple)):
        data = item  # type: ignore[assignment]
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    cap = len(data)
    idx = [0, len(data)]
    for i, ix in enumerate(indexes[:2]):
        idx[i] = _index_arg(ix, cap)
    if len(indexes) == 3:
        cap = _index_arg(indexes[2], cap)
        if idx[1] > cap:
            raise FuncError(f"invalid slice index: {idx[1]} > {cap}")
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    result = data[idx[0] : idx[1]]
    if isinstance(result, bytes):
        return result.decode("utf-8", "replace")
    return list(result)


# ---- printing and escaping -------------------------------------------------------------------------


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return gofmt.sprint(list(args))


def printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise FuncError(f"wrong type for value; expected string; got {type_name(fmt)}")
    try:
        return gofmt.sprintf(fmt, list(args))
    except ValueError as exc:
        raise FuncError(str(exc)) from None


def not_(arg: Any) -> bool:
    return not truth(arg)


def call(fn: Any, *args: Any) -> Any:
    if _nil(fn):
        raise FuncError("call of nil")
    raise FuncError(f"non-function of type {type_name(fn)}")


# ---- Ollama's functions ----------------------------------------------------------------------------


def json_(v: Any) -> str:
    try:
        return gojson.marshal(v)
    except gojson.MarshalError:
        return ""


def current_date(*args: Any) -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d")


def yesterday_date(*args: Any) -> str:
    now = datetime.datetime.now().astimezone()
    return (now - datetime.timedelta(days=1)).strftime("%Y-%m-%d")


def to_typescript_type(v: Any) -> str:
    if isinstance(v, GoStruct) and "ToTypeScriptType" in v.methods:
        return str(v.methods["ToTypeScriptType"](v))
    return "any"


@dataclass(frozen=True)
class Func:
    fn: Callable[..., Any]
    min_args: int
    max_args: int | None


BUILTINS: dict[str, Func] = {
    # "and" and "or" are evaluated lazily by the executor; listed here for arity and lookup.
    "and": Func(lambda *a: a[-1], 1, None),
    "or": Func(lambda *a: a[-1], 1, None),
    "not": Func(not_, 1, 1),
    "len": Func(length, 1, 1),
    "index": Func(index, 1, None),
    "slice": Func(slice_, 1, None),
    "eq": Func(eq, 1, None),
    "ne": Func(ne, 2, 2),
    "lt": Func(lt, 2, 2),
    "le": Func(le, 2, 2),
    "gt": Func(gt, 2, 2),
    "ge": Func(ge, 2, 2),
    "print": Func(lambda *a: gofmt.sprint(list(a)), 0, None),
    "printf": Func(printf, 1, None),
    "println": Func(lambda *a: gofmt.sprintln(list(a)), 0, None),
    "html": Func(lambda *a: gofmt.html_escape(_eval_args(a)), 0, None),
    "js": Func(lambda *a: gofmt.js_escape(_eval_args(a)), 0, None),
    "urlquery": Func(lambda *a: gofmt.url_query_escape(_eval_args(a)), 0, None),
    "call": Func(call, 1, None),
}

OLLAMA_FUNCS: dict[str, Func] = {
    "json": Func(json_, 1, 1),
    "currentDate": Func(current_date, 0, None),
    "yesterdayDate": Func(yesterday_date, 0, None),
    "toTypeScriptType": Func(to_typescript_type, 1, 1),
}

ALL_FUNCS: dict[str, Func] = {**BUILTINS, **OLLAMA_FUNCS}

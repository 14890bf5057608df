"""Python stand-ins for the Go values a template sees.

Plain Python values map to Go's dynamic types as ``encoding/json`` would decode them into ``any``:
``str`` string, ``bool`` bool, ``int`` int, ``float`` float64, ``list`` []any, ``dict``
map[string]any, ``None`` a nil interface. The types below cover what plain values cannot express:
structs with Go field order and JSON tags, typed nil slices and maps, ``String()`` methods, and
pointers (which print as addresses when nested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar


class _NoValue:
    """Go's invalid ``reflect.Value``: a missing map key without ``missingkey=zero``."""

    _instance: ClassVar[_NoValue | None] = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()


class NilPointer:
    """A typed nil pointer (prints ``<nil>``; field access is an error)."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"NilPointer({self.type_name})"


class GoSlice(list[Any]):
    """A typed slice that may be nil (JSON ``null``) and may carry a ``String()`` method."""

    go_type: ClassVar[str] = "[]interface {}"

    def __init__(self, items: Any = (), *, nil: bool = False) -> None:
        super().__init__(items)
        self.nil = nil and not self

    def go_string(self) -> str | None:
        return None


class GoMap(dict[str, Any]):
    """A typed map that may be nil and may carry a ``String()`` method."""

    go_type: ClassVar[str] = "map[string]interface {}"

    def __init__(self, items: Any = (), *, nil: bool = False) -> None:
        super().__init__(items)
        self.nil = nil and not self

    def go_string(self) -> str | None:
        return None


class OrderedMap(dict[str, Any]):
    """``*api.ToolPropertiesMap``: a pointer to an insertion-ordered map (JSON keeps the order)."""

    go_type: ClassVar[str] = "*api.ToolPropertiesMap"


class GoStruct:
    """A Go struct value. ``fields``: Go field names in declaration order.

    ``json_fields``: (field, json name, omitempty) in order, or ``None`` for untagged structs.
    ``pointer``: the value is reached through a pointer (nested, it prints as an address).
    ``methods``: exported methods callable from a template (``{{ .Method arg }}``).
    """

    go_type: ClassVar[str] = "struct"
    fields: ClassVar[tuple[str, ...]] = ()
    json_fields: ClassVar[tuple[tuple[str, str, bool], ...] | None] = None
    pointer: ClassVar[bool] = False
    methods: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init__(self, **values: Any) -> None:
        for name in self.fields:
            object.__setattr__(self, name, values.get(name))

    def go_string(self) -> str | None:
        """The result of the type's ``String()`` method, or ``None`` if it has none."""
        return None

    def field_items(self) -> Iterator[tuple[str, Any]]:
        for name in self.fields:
            yield name, getattr(self, name)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.field_items())
        return f"{type(self).__name__}({inner})"


def type_name(value: Any) -> str:
    """Go's ``%T`` of a value, for error messages and ``printf``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (GoSlice, GoMap, OrderedMap, GoStruct)):
        return value.go_type
    if isinstance(value, NilPointer):
        return value.type_name
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__

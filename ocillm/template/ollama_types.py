"""The Go types Ollama hands to templates (``templateMessage``, ``templateTool`` ...), built from
Ollama-API-shaped dicts.

Printing follows Go exactly, including the quirk that ``{{ .Function }}`` and
``{{ .Function.Parameters }}`` print Go struct syntax (``{get_weather Get weather {object <nil>
<nil> [location] {...}}}``) because those types have no ``String()`` method (Ollama <= fb30760,
ollama issue #14601). Values decoded from JSON into ``any`` follow ``encoding/json``: numbers
are float64.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from . import gojson
from .gofmt import sprint_value
from .gotypes import GoMap, GoSlice, GoStruct, NilPointer, OrderedMap


def generic(value: Any) -> Any:
    """A JSON value as Go decodes it into ``any`` (numbers become float64)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, Mapping):
        return {str(k): generic(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [generic(v) for v in value]
    return value


# ---- tools ---------------------------------------------------------------------------------------


class PropertyType(GoSlice):
    """``api.PropertyType``: one JSON Schema type or several."""

    go_type = "api.PropertyType"

    def go_string(self) -> str | None:
        if not self:
            return ""
        if len(self) == 1:
            return str(self[0])
        return "[" + " ".join(str(x) for x in self) + "]"

    def go_json(self) -> str:
        if len(self) == 1:
            return gojson.quote(str(self[0]))
        return "null" if self.nil else gojson.marshal(list(self))

    methods: ClassVar[dict[str, Any]] = {"String": lambda self: self.go_string()}


_TS_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "array": "any[]",
    "object": "Record<string, any>",
    "null": "null",
}


def _to_typescript(prop: GoStruct) -> str:
    any_of = getattr(prop, "AnyOf", None) or []
    if any_of:
        return " | ".join(_to_typescript(p) for p in any_of)
    types = getattr(prop, "Type", None) or []
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") for t in types)


class ToolPropertiesMap(OrderedMap):
    """``*api.ToolPropertiesMap`` (insertion-ordered)."""

    methods: ClassVar[dict[str, Any]] = {
        "Len": lambda self: len(self),
        "ToMap": lambda self: TemplateProperties(self),
    }


class ToolProperty(GoStruct):
    go_type = "api.ToolProperty"
    fields = ("AnyOf", "Type", "Items", "Description", "Enum", "Properties", "Required")
    json_fields = (
        ("AnyOf", "anyOf", True),
        ("Type", "type", True),
        ("Items", "items", True),
        ("Description", "description", True),
        ("Enum", "enum", True),
        ("Properties", "properties", True),
        ("Required", "required", True),
    )
    methods: ClassVar[dict[str, Any]] = {"ToTypeScriptType": _to_typescript}


class TemplateProperties(GoMap):
    """``templateProperties`` (map[string]api.ToolProperty with a JSON ``String()``)."""

    go_type = "template.templateProperties"

    def go_string(self) -> str | None:
        return "{}" if self.nil else gojson.marshal(self)

    methods: ClassVar[dict[str, Any]] = {"String": lambda self: self.go_string()}


class TemplateToolFunctionParameters(GoStruct):
    go_type = "template.templateToolFunctionParameters"
    fields = ("Type", "Defs", "Items", "Required", "Properties")
    json_fields = (
        ("Type", "type", False),
        ("Defs", "$defs", True),
        ("Items", "items", True),
        ("Required", "required", True),
        ("Properties", "properties", False),
    )


class TemplateToolFunction(GoStruct):
    go_type = "template.templateToolFunction"
    fields = ("Name", "Description", "Parameters")
    json_fields = (
        ("Name", "name", False),
        ("Description", "description", False),
        ("Parameters", "parameters", False),
    )


class TemplateTool(GoStruct):
    go_type = "template.templateTool"
    fields = ("Type", "Items", "Function")
    json_fields = (
        ("Type", "type", False),
        ("Items", "items", True),
        ("Function", "function", False),
    )

    def go_string(self) -> str | None:
        return gojson.marshal(self)

    methods: ClassVar[dict[str, Any]] = {"String": lambda self: self.go_string()}


class TemplateTools(GoSlice):
    go_type = "template.templateTools"

    def go_string(self) -> str | None:
        return gojson.marshal(self)

    methods: ClassVar[dict[str, Any]] = {"String": lambda self: self.go_string()}


def _string_list(value: Any) -> GoSlice:
    if value is None:
        return GoSlice(nil=True)
    if isinstance(value, str):
        return GoSlice([value])
    return GoSlice([str(x) for x in value])


def tool_property(data: Any) -> ToolProperty:
    """``api.ToolProperty`` decoded from a JSON Schema property (unknown keys are dropped)."""
    d: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
    raw_type = d.get("type")
    if raw_type is None:
        ptype = PropertyType(nil=True)
    elif isinstance(raw_type, str):
        ptype = PropertyType([raw_type])
    else:
        ptype = PropertyType([str(t) for t in raw_type])
    any_of = d.get("anyOf")
    enum = d.get("enum")
    return ToolProperty(
        AnyOf=GoSlice([tool_property(p) for p in any_of])
        if any_of is not None
        else GoSlice(nil=True),
        Type=ptype,
        Items=generic(d.get("items")),
        Description=str(d.get("description") or ""),
        Enum=GoSlice(generic(list(enum))) if enum is not None else GoSlice(nil=True),
        Properties=_properties_map(d.get("properties")),
        Required=_string_list(d.get("required")),
    )


def _properties_map(value: Any) -> ToolPropertiesMap | NilPointer:
    if value is None or not isinstance(value, Mapping):
        return NilPointer("*api.ToolPropertiesMap")
    return ToolPropertiesMap((str(k), tool_property(v)) for k, v in value.items())


def convert_tools(tools: Any) -> TemplateTools:
    """``convertToolsForTemplate``: None gives a nil templateTools (prints ``null``)."""
    if tools is None:
        return TemplateTools(nil=True)
    result = TemplateTools()
    for tool in tools:
        t: Mapping[str, Any] = tool if isinstance(tool, Mapping) else {}
        fn: Mapping[str, Any] = t.get("function") or {}
        params: Mapping[str, Any] = fn.get("parameters") or {}
        props = params.get("properties")
        properties = (
            TemplateProperties(nil=True)
            if not isinstance(props, Mapping)
            else TemplateProperties((str(k), tool_property(v)) for k, v in props.items())
        )
        result.append(
            TemplateTool(
                Type=str(t.get("type") or ""),
                Items=generic(t.get("items")),
                Function=TemplateToolFunction(
                    Name=str(fn.get("name") or ""),
                    Description=str(fn.get("description") or ""),
                    Parameters=TemplateToolFunctionParameters(
                        Type=str(params.get("type") or ""),
                        Defs=generic(params.get("$defs")),
                        Items=generic(params.get("items")),
                        Required=_string_list(params.get("required")),
                        Properties=properties,
                    ),
                ),
            )
        )
    return result


# ---- messages ------------------------------------------------------------------------------------


class TemplateArgs(GoMap):
    """``templateArgs`` (map[string]any with a JSON ``String()``; nil prints ``{}``)."""

    go_type = "template.templateArgs"

    def go_string(self) -> str | None:
        return "{}" if self.nil else gojson.marshal(self)

    methods: ClassVar[dict[str, Any]] = {"String": lambda self: self.go_string()}


class TemplateToolCallFunction(GoStruct):
    go_type = "template.templateToolCallFunction"
    fields = ("Index", "Name", "Arguments")


class TemplateToolCall(GoStruct):
    go_type = "template.templateToolCall"
    fields = ("ID", "Function")


class TemplateMessage(GoStruct):
    """``*templateMessage``: reached through a pointer (``{{ .Messages }}`` prints addresses)."""

    go_type = "*template.templateMessage"
    pointer = True
    fields = ("Role", "Content", "Thinking", "Images", "ToolCalls", "ToolName", "ToolCallID")


class ImageData(bytes):
    """``api.ImageData`` ([]byte: JSON base64, ``%v`` a list of byte values)."""


def _arguments(value: Any) -> TemplateArgs:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, Mapping):
        return TemplateArgs(nil=True)
    return TemplateArgs((str(k), generic(v)) for k, v in value.items())


def _image(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return ImageData(value)
    import base64
    import binascii

    try:
        return ImageData(base64.b64decode(str(value), validate=False))
    except (binascii.Error, ValueError):
        return ImageData(str(value).encode())


def convert_message(m: Mapping[str, Any]) -> TemplateMessage:
    calls = m.get("tool_calls") or []
    tool_calls = GoSlice(nil=True)
    for call in calls:
        fn: Mapping[str, Any] = call.get("function") or {}
        index = fn.get("index", 0)
        tool_calls.append(
            TemplateToolCall(
                ID=str(call.get("id") or ""),
                Function=TemplateToolCallFunction(
                    Index=int(index) if isinstance(index, (int, float)) else 0,
                    Name=str(fn.get("name") or ""),
                    Arguments=_arguments(fn.get("arguments")),
                ),
            )
        )
    tool_calls.nil = not tool_calls
    images = m.get("images")
    return TemplateMessage(
        Role=str(m.get("role") or ""),
        Content=str(m.get("content") or ""),
        Thinking=str(m.get("thinking") or ""),
        Images=GoSlice([_image(i) for i in images]) if images else GoSlice(nil=True),
        ToolCalls=tool_calls,
        ToolName=str(m.get("tool_name") or ""),
        ToolCallID=str(m.get("tool_call_id") or ""),
    )


def convert_messages(messages: Sequence[Mapping[str, Any]]) -> GoSlice:
    return GoSlice([convert_message(m) for m in messages], nil=not messages)


def describe(value: Any) -> str:
    """Go's ``%v`` of a data-model value (for debugging and docs)."""
    return sprint_value(value)

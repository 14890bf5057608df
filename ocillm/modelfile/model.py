"""The parsed forms of a Modelfile: raw commands and the validated Modelfile."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from ocillm.modelfile.params import ParamValue, normalize_parameter


class Message(BaseModel):
    """A MESSAGE instruction: one turn of the conversation a model starts with."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Command(BaseModel):
    """One instruction exactly as Ollama's parser reports it.

    ``name`` uses Ollama's internal names: ``model`` for FROM, the lower-cased instruction
    word for the others, and the parameter name as written for PARAMETER. A MESSAGE's
    ``args`` is ``"role: text"``. ``line``/``column`` locate the instruction word.
    """

    name: str
    args: str
    line: int
    column: int
    # Where the value (and a PARAMETER's name) start, for validation errors.
    _value_pos: tuple[int, int] = PrivateAttr(default=(0, 0))
    _name_pos: tuple[int, int] = PrivateAttr(default=(0, 0))

    @property
    def value_position(self) -> tuple[int, int]:
        return self._value_pos if self._value_pos != (0, 0) else (self.line, self.column)

    @property
    def name_position(self) -> tuple[int, int]:
        return self._name_pos if self._name_pos != (0, 0) else (self.line, self.column)


class Modelfile(BaseModel):
    """A validated Modelfile. Equality is semantic: ``warnings`` do not take part."""

    froms: list[str]
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    adapters: list[str] = Field(default_factory=list)
    licenses: list[str] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    requires: str | None = None
    draft: str | None = None
    renderer: str | None = None
    parser: str | None = None
    warnings: list[str] = Field(default_factory=list)

    @field_validator("parameters", mode="before")
    @classmethod
    def _check_parameters(cls, value: object) -> object:
        # Known parameters get their Ollama type (floats rounded to float32, as Ollama
        # stores them), so a Modelfile built in code equals the same one parsed from text.
        if not isinstance(value, dict):
            return value
        # An empty stop list says nothing a Modelfile could write, so it is dropped.
        checked = {str(k): normalize_parameter(str(k), v) for k, v in value.items()}
        return {k: v for k, v in checked.items() if v != []}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Modelfile):
            return NotImplemented
        return self.model_dump(exclude={"warnings"}) == other.model_dump(exclude={"warnings"})

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

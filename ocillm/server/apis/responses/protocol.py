"""OpenAI Responses API bodies (``POST /v1/responses``, ``GET``/``DELETE /v1/responses/{id}``).

Requests are strict as OpenAI's are: an unknown field is a 400, so nothing is silently dropped;
fields ocillm cannot honour are refused where they are read (:mod:`.translate`). Input items are
parsed one by one by their ``type`` (a message when it has none).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class InputText(_Body):
    type: Literal["input_text", "output_text"]
    text: str
    annotations: list[Any] | None = None  # on output_text given back
    logprobs: list[Any] | None = None


class InputImage(_Body):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto"] | None = None


class MessageItem(_Body):
    type: Literal["message"] = "message"
    id: str | None = None
    status: str | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText | InputImage]


class FunctionCallItem(_Body):
    type: Literal["function_call"]
    id: str | None = None
    status: str | None = None
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItem(_Body):
    type: Literal["function_call_output"]
    id: str | None = None
    status: str | None = None
    call_id: str
    output: str | list[InputText]


class ReasoningItem(_Body):
    type: Literal["reasoning"]
    id: str | None = None
    status: str | None = None
    summary: list[dict[str, Any]] = Field(default_factory=list)
    content: list[dict[str, Any]] | None = None
    encrypted_content: str | None = None


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem
ITEM_TYPES: dict[str, type[InputItem]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
    "reasoning": ReasoningItem,
}


class FunctionTool(_Body):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # the output follows the schema under a grammar either way


class TextFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextConfig(_Body):
    format: TextFormat | None = None
    verbosity: Literal["medium"] | None = None  # the only one a local model can be held to


class Reasoning(_Body):
    effort: str | None = None
    #: any value: the reasoning item's summary is the whole thinking (no summariser here)
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesRequest(_Body):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Any = None  # "auto", "none", "required" or {"type": "function", "name": ...}
    parallel_tool_calls: bool | None = None  # false: only the first call is kept
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    reasoning: Reasoning | None = None
    truncation: Literal["auto", "disabled"] | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    include: list[Literal["reasoning.encrypted_content"]] | None = None
    background: Literal[False] | None = None
    #: routing and caching hints: they change no output here (documented in docs/openai.md)
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    user: str | None = None
    service_tier: Literal["auto", "default"] | None = None
    stream_options: dict[str, bool] | None = None

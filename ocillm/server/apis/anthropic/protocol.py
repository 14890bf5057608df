"""Anthropic Messages API bodies (``/v1/messages``, ``/v1/messages/count_tokens``).

Requests are strict as Anthropic's own API is: an unknown field is a 400 (``extra="forbid"``), so
nothing a client sends is silently dropped. Fields ocillm cannot honour are refused where they are
read (:mod:`.translate`). Responses mirror the wire field for field, as the SDK parses them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CacheControl(_Body):
    """Prompt-caching hint: accepted; the runner keeps the prompt's prefix cached on its own."""

    type: Literal["ephemeral"] = "ephemeral"
    ttl: str | None = None


class TextBlock(_Body):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None
    citations: list[Any] | None = None


class ImageSource(_Body):
    type: Literal["base64", "url"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ImageBlock(_Body):
    type: Literal["image"]
    source: ImageSource
    cache_control: CacheControl | None = None


class ToolUseBlock(_Body):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    cache_control: CacheControl | None = None


class ToolResultBlock(_Body):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(_Body):
    type: Literal["thinking"]
    thinking: str
    signature: str = ""  # ocillm's own answers carry an empty signature; none is checked


ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


class MessageParam(_Body):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class Tool(_Body):
    type: Literal["custom"] | None = None
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolChoice(_Body):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    #: false: one call or several; true: at most one (the first the model makes is kept)
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(_Body):
    type: Literal["enabled", "disabled", "adaptive"]
    #: Anthropic's rules are checked (at least 1024, under max_tokens); the thinking is bounded
    #: by max_tokens as a whole, not by this budget of its own
    budget_tokens: int | None = Field(default=None, ge=1024)


class Metadata(_Body):
    user_id: str | None = None


class CountTokensRequest(_Body):
    model: str
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: Metadata | None = None


# --- responses -------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usage(_Out):
    input_tokens: int
    output_tokens: int


class OutText(_Out):
    type: Literal["text"] = "text"
    text: str


class OutThinking(_Out):
    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str = ""


class OutToolUse(_Out):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


OutBlock = Annotated[OutText | OutThinking | OutToolUse, Field(discriminator="type")]
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class AnthropicMessage(_Out):
    """A whole answer (``type: "message"``)."""

    id: str  # msg_…
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[OutBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


class TokenCount(_Out):
    input_tokens: int


class ErrorBody(_Out):
    type: str  # invalid_request_error, authentication_error, not_found_error, api_error, ...
    message: str


class ErrorResponse(_Out):
    type: Literal["error"] = "error"
    error: ErrorBody


#: Anthropic's error type for each status (``api_error`` for the rest).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}``: Anthropic's error shape."""
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
    }

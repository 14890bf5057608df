"""OpenAI API request and response bodies, as Ollama's compatibility layer accepts and returns them
(reference/ollama.md §1.13). Unknown fields are ignored; unsupported ones are accepted and unused.

Requests are lenient where Ollama is (``content``, ``stop`` and ``input`` are checked, with
Ollama's words, by :mod:`.translate`). Responses are strict (``extra="forbid"``):
they mirror the wire field for field, and the tests validate what the server sends against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FunctionCall(_Body):
    name: str = ""
    arguments: str | dict[str, Any] | None = "{}"


class ToolCall(_Body):
    id: str | None = None
    type: str = "function"
    index: int | None = None
    function: FunctionCall


class ChatMessage(_Body):
    role: str
    #: a string, a list of content parts (``text``, ``image_url``), or null with ``tool_calls``
    content: Any = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None


class JSONSchemaFormat(_Body):
    name: str | None = None
    schema_: Any = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: str = "text"  # "text", "json_object" or "json_schema"
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class Reasoning(_Body):
    effort: str | None = None


class ChatCompletionRequest(_Body):
    model: str = ""
    messages: list[ChatMessage] = Field(default_factory=list)
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    stop: Any = None  # a string or a list of strings
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None  # "auto", "none", "required" or {"type": "function", ...}
    reasoning_effort: str | None = None
    reasoning: Reasoning | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    n: int | None = None
    user: str | None = None


class CompletionRequest(_Body):
    model: str = ""
    prompt: str = ""
    suffix: str | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    stop: Any = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    logprobs: int | None = None
    echo: bool | None = None
    best_of: int | None = None
    n: int | None = None
    user: str | None = None


class EmbeddingRequest(_Body):
    model: str = ""
    input: Any = None  # a string or a list of strings
    encoding_format: str | None = None  # "float" (default) or "base64"
    dimensions: int | None = Field(default=None, ge=0)
    user: str | None = None


# --- responses -------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usage(_Out):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class OutFunction(_Out):
    name: str
    arguments: str  # the arguments object as JSON text


class OutToolCall(_Out):
    id: str
    index: int
    type: Literal["function"] = "function"
    function: OutFunction


class OutMessage(_Out):
    role: Literal["assistant"] = "assistant"
    content: str
    reasoning: str | None = None
    tool_calls: list[OutToolCall] | None = None


class Choice(_Out):
    index: int = 0
    message: OutMessage
    finish_reason: str | None


class ChatCompletion(_Out):
    id: str  # chatcmpl-…
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: Literal["fp_ollama"] = "fp_ollama"
    choices: list[Choice]
    usage: Usage


class Delta(_Out):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[OutToolCall] | None = None


class ChunkChoice(_Out):
    index: int = 0
    delta: Delta
    finish_reason: str | None


class ChatCompletionChunk(_Out):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: Literal["fp_ollama"] = "fp_ollama"
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionChoice(_Out):
    text: str
    index: int = 0
    finish_reason: str | None


class Completion(_Out):
    """``/v1/completions``: the whole answer (``text_completion``), or one streamed chunk."""

    id: str  # cmpl-…
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: Literal["fp_ollama"] = "fp_ollama"
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(_Out):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str  # floats, or base64 of little-endian float32
    index: int


class EmbeddingUsage(_Out):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Out):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ModelObject(_Out):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(_Out):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class ErrorBody(_Out):
    message: str
    type: str  # invalid_request_error (400), not_found_error (404), api_error otherwise
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Out):
    error: ErrorBody


def error_type(status: int) -> str:
    """OpenAI's ``error.type`` for a status, as Ollama's compatibility layer names it."""
    if status == 400:
        return "invalid_request_error"
    if status == 404:
        return "not_found_error"
    return "api_error"


def error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``: the ``/v1`` error shape."""
    return {"error": {"message": message, "type": error_type(status), "param": None, "code": code}}

"""Ollama API request and response bodies (reference/ollama.md §1), as pydantic models.

Unknown fields are ignored, as Go's JSON decoder does. ``priority`` on generate/chat/embed is an
ocillm extension: a larger number is served first among waiting requests.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

KeepAlive = str | float | int | None
#: ``"json"`` or a JSON-Schema object; anything else is refused with Ollama's words, not here.
Format = Any
#: ``true``/``false`` or ``"low"|"medium"|"high"|"max"``; checked with Ollama's words, not here.
Think = Any


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Named(_Body):
    """Requests that accept ``model`` or its deprecated alias ``name``."""

    model: str = ""
    name: str | None = None

    @model_validator(mode="after")
    def _alias(self) -> _Named:
        if not self.model and self.name:
            self.model = self.name
        return self


class ToolCallFunction(_Body):
    index: int | None = None
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCall(_Body):
    id: str | None = None
    function: ToolCallFunction


class Message(_Body):
    #: Any case on the wire (lower-cased here); other roles are refused with Ollama's words.
    role: str = Field(json_schema_extra={"enum": ["system", "user", "assistant", "tool"]})
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None

    @field_validator("role")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class Tool(_Body):
    model_config = ConfigDict(extra="allow")
    type: str = "function"
    function: dict[str, Any]


class GenerateRequest(_Named):
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    stream: bool | None = True
    raw: bool = False
    format: Format = None
    keep_alive: KeepAlive = None
    images: list[str] | None = None
    options: dict[str, Any] | None = None
    think: Think = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    priority: int = 0
    #: answer with the rendered prompt (``_debug_info``) instead of running the model
    debug_render_only: bool = Field(default=False, alias="_debug_render_only")


class ChatRequest(_Named):
    messages: list[Message] = Field(default_factory=list)
    tools: list[Tool] | None = None
    stream: bool | None = True
    format: Format = None
    keep_alive: KeepAlive = None
    options: dict[str, Any] | None = None
    think: Think = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    priority: int = 0
    debug_render_only: bool = Field(default=False, alias="_debug_render_only")


class EmbedRequest(_Named):
    input: Any = None  # a string or a list of strings ("invalid input type" otherwise)
    truncate: bool | None = None
    dimensions: int | None = Field(default=None, gt=0)
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    priority: int = 0


class EmbeddingsRequest(_Named):
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class ShowRequest(_Named):
    verbose: bool = False
    system: str | None = None
    template: str | None = None
    options: dict[str, Any] | None = None


class CopyRequest(_Body):
    source: str
    destination: str


class DeleteRequest(_Named):
    pass


class PullRequest(_Named):
    insecure: bool = False
    stream: bool | None = True


class PushRequest(_Named):
    insecure: bool = False
    stream: bool | None = True


class CreateRequest(_Named):
    from_: str | None = Field(default=None, alias="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    system: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[Message] | None = None
    quantize: str | None = None
    quantization: str | None = None
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None
    stream: bool | None = True


class Details(_Body):
    parent_model: str = ""
    format: str = "gguf"
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class ProgressResponse(_Body):
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


# --- responses -------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metrics(_Out):
    """Durations in nanoseconds, as Ollama reports them on the final chunk."""

    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class GenerateResponse(Metrics):
    model: str
    created_at: str
    response: str = ""
    thinking: str | None = None
    done: bool = False
    done_reason: str | None = None
    context: list[int] | None = None


class ChatMessageOut(_Out):
    role: str = "assistant"
    content: str = ""
    thinking: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatResponse(Metrics):
    model: str
    created_at: str
    message: ChatMessageOut = Field(default_factory=ChatMessageOut)
    done: bool = False
    done_reason: str | None = None


class EmbedResponse(_Out):
    model: str
    embeddings: list[list[float]]
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None


class EmbeddingResponse(_Out):
    embedding: list[float]


class ListModel(_Out):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str  # hex of the manifest's sha256, no prefix (as Ollama)
    details: Details
    capabilities: list[str] | None = None


class ListResponse(_Out):
    models: list[ListModel]


class RunningModel(_Out):
    name: str
    model: str
    size: int
    digest: str
    details: Details
    expires_at: str
    size_vram: int
    context_length: int
    # ocillm extensions: where and what
    processor: str | None = None
    pid: int | None = None


class ProcessResponse(_Out):
    models: list[RunningModel]


class VersionResponse(_Out):
    version: str


class ErrorResponse(_Out):
    error: str

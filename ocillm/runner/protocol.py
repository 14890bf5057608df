"""The runner's internal wire format: JSON bodies of ``/completion``, ``/embedding``, ``/tokenize``.

Sampling defaults are Ollama's (``api.DefaultOptions``). The daemon fills every field it knows;
the runner validates what arrives and answers 400 with the validation message otherwise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DoneReason = Literal["stop", "length"]


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = None
    tokens: list[int] | None = None  # instead of a prompt: token ids, used as they are
    add_bos: bool = True  # with a prompt: let the tokenizer add BOS (as llama.cpp does)
    images: list[str] = Field(default_factory=list)  # base64 pictures, placed by [img-N] tags
    stream: bool = True
    num_predict: int = -1  # -1 (or -2): until the context is full
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64  # 0 off, -1 the whole context
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1  # -1: random
    stop: list[str] = Field(default_factory=list)
    grammar: str | None = None  # GBNF text (``format: json`` / a JSON schema, converted upstream)
    logprobs: bool = False  # each generated token's log probability
    top_logprobs: int = Field(default=0, ge=0, le=20)  # and the N most likely tokens at its step
    draft_num_predict: int = Field(default=4, ge=0)  # tokens a draft model proposes a step
    num_keep: int = 4  # tokens a context shift keeps at the start (-1: the whole prompt)
    shift: bool = True  # a full context shifts (False: the generation ends with "length")

    @model_validator(mode="after")
    def _one_input(self) -> CompletionRequest:
        if (self.prompt is None) == (self.tokens is None):
            raise ValueError("give exactly one of prompt and tokens")
        return self


class TopLogprob(BaseModel):
    token: str
    logprob: float  # natural log, from the model's logits before any sampler touched them
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class CompletionChunk(BaseModel):
    """One NDJSON line of a completion. The last has ``done`` and the metrics (durations in ns)."""

    content: str = ""
    logprobs: list[TokenLogprob] | None = None  # the tokens sampled since the last chunk
    done: bool = False
    done_reason: DoneReason | None = None
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    prompt_cached: int = 0  # of prompt_eval_count, the tokens found in the KV cache
    context_shifted: bool | None = None  # the context filled and was shifted (num_keep)
    draft_count: int | None = None  # with a draft model: tokens it proposed
    draft_accepted: int | None = None  # and of those, tokens the model itself sampled
    #: the stop sequence that ended the generation (``done_reason`` is then ``stop``)
    stop_sequence: str | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: list[str]
    normalize: bool = True  # L2-normalise each vector (Ollama's /api/embed does)
    truncate: bool = True  # cut inputs longer than the context instead of failing


class EmbeddingResponse(BaseModel):
    embeddings: list[list[float]]
    prompt_eval_count: int


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str
    add_special: bool = True  # add BOS where the model wants one
    parse_special: bool = True  # "<|im_start|>" becomes the control token


class TokenizeResponse(BaseModel):
    tokens: list[int]


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[int]


class DetokenizeResponse(BaseModel):
    content: str


class HealthResponse(BaseModel):
    status: Literal["ok", "loading", "error"]
    slots_idle: int = 0
    slots_busy: int = 0
    n_ctx: int = 0
    pid: int = 0


class ErrorResponse(BaseModel):
    error: str


#: The line a runner prints on stdout once it listens: ``OCILLM_RUNNER_READY port=PORT`` or
#: ``OCILLM_RUNNER_READY socket=PATH``.
READY_PREFIX = "OCILLM_RUNNER_READY"


class RerankRequest(BaseModel):
    """Score each document's relevance to ``query`` (a reranker: pooling type rank)."""

    model_config = ConfigDict(extra="forbid")

    query: str
    documents: list[str]
    truncate: bool = True  # cut a document that does not fit beside the query, else fail


class RerankResponse(BaseModel):
    scores: list[float]  # one per document, in the request's order
    prompt_eval_count: int

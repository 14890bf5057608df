"""Ollama ``options`` → the runner's sampling fields and the scheduler's load options.

Precedence: the request's ``options`` over the image's PARAMETERs over the defaults (Ollama's
``api.DefaultOptions``; ``num_ctx`` from ``OCILLM_CONTEXT_LENGTH`` or the memory tier). Values are
type-checked as Ollama's ``Options.FromMap`` does, with its words (``option "top_k" must be of
type integer``), and range-checked against ``PARAMETER_RANGES`` (``option "num_batch" must be
at least 1``), so nothing reaches llama.cpp that could crash it; unknown names are logged and
ignored; ``null`` leaves the value unset.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ocillm.modelfile.params import VALID_PARAMETERS, float32_is_finite, range_error
from ocillm.runner.protocol import CompletionRequest
from ocillm.scheduler.request import LoadOptions
from ocillm.server.errors import ApiError

log = logging.getLogger(__name__)

#: Ollama's defaults (``api.DefaultOptions``); ``num_ctx`` comes from the server's settings.
DEFAULTS: dict[str, Any] = {
    "num_keep": 4,
    "seed": -1,
    "num_predict": -1,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_last_n": 64,
    "temperature": 0.8,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "stop": [],
    "draft_num_predict": 4,  # used only when the image has a DRAFT model
    "num_batch": 512,
    "num_gpu": -1,
    "num_thread": 0,
    "use_mmap": None,
}

_SAMPLING = (
    "num_predict",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "stop",
    "num_keep",
    "draft_num_predict",
)


def check_options(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Known options converted to their Ollama type; a wrong type is a 400 in Ollama's words."""
    out: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        kind = VALID_PARAMETERS.get(key)
        if kind is None:
            log.warning("invalid option provided: %s", key)
            continue
        if value is None:
            continue
        out[key] = _convert(key, kind, value)
    return out


def _convert(key: str, kind: type, value: Any) -> Any:
    if kind is int:
        # Ollama truncates 1.5 to 1; a fraction (or NaN, inf) in a count is a mistake to name.
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (isinstance(value, float) and not value.is_integer())
        ):
            raise ApiError(400, f'option "{key}" must be of type integer')
        return _in_range(key, int(value))
    if kind is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not float32_is_finite(float(value))
        ):
            raise ApiError(400, f'option "{key}" must be of type float32')
        return _in_range(key, float(value))
    if kind is bool:
        if not isinstance(value, bool):
            raise ApiError(400, f'option "{key}" must be of type boolean')
        return value
    if kind is list:
        if not isinstance(value, list):
            raise ApiError(400, f'option "{key}" must be of type array')
        if not all(isinstance(item, str) for item in value):
            raise ApiError(400, f'option "{key}" must be of an array of strings')
        return list(value)
    return value  # pragma: no cover - every parameter has one of the kinds above


def _in_range(key: str, value: Any) -> Any:
    problem = range_error(key, value)
    if problem is not None:
        raise ApiError(400, f"option {problem}")
    return value


@dataclass(frozen=True)
class Options:
    """Every option resolved: what the runner samples with and how the model is loaded."""

    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        image_params: Mapping[str, Any] | None,
        request_options: Mapping[str, Any] | None,
        *,
        num_ctx: int,
    ) -> Options:
        values = {**DEFAULTS, "num_ctx": num_ctx}
        values.update(check_options(image_params))
        values.update(check_options(request_options))
        return cls(values)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def load(self, *, embedding: bool = False) -> LoadOptions:
        v = self.values
        return LoadOptions(
            num_ctx=max(int(v["num_ctx"]), 4),
            num_batch=int(v["num_batch"]),
            num_gpu=int(v["num_gpu"]),
            num_thread=max(int(v["num_thread"]), 0),
            use_mmap=v["use_mmap"],
            embedding=embedding,
            main_gpu=v.get("main_gpu"),
        )

    def completion(
        self,
        *,
        prompt: str | None = None,
        tokens: list[int] | None = None,
        grammar: str | None = None,
        images: list[str] | None = None,
    ) -> CompletionRequest:
        sampling = {k: self.values[k] for k in _SAMPLING}
        sampling["stop"] = [s for s in sampling["stop"] if s]
        return CompletionRequest(
            prompt=prompt, tokens=tokens, grammar=grammar, images=images or [], **sampling
        )

"""Runners: one OS process per loaded model, wrapping llama-cpp-python, reached over HTTP.

The child side is ``python -m ocillm.runner`` (:mod:`ocillm.runner.engine` +
:mod:`ocillm.runner.server`); the daemon side is :class:`RunnerProcess` (start, health, stop by
PID) over :class:`RunnerClient`. :class:`Runner` is the seam the scheduler hands out.
"""

from ocillm.runner.base import Runner
from ocillm.runner.client import RunnerClient, RunnerUnreachable
from ocillm.runner.errors import RunnerError, RunnerLoadError
from ocillm.runner.process import RunnerProcess
from ocillm.runner.protocol import (
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    RerankRequest,
    RerankResponse,
)
from ocillm.runner.spec import RunnerSpec

__all__ = [
    "CompletionChunk",
    "CompletionRequest",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "RerankRequest",
    "RerankResponse",
    "Runner",
    "RunnerClient",
    "RunnerError",
    "RunnerLoadError",
    "RunnerProcess",
    "RunnerSpec",
    "RunnerUnreachable",
]

"""The runner seam: what the scheduler hands out and the server talks to.

``RunnerProcess`` (a ``python -m ocillm.runner`` child) is the real one; the scheduler's tests use
a stub that needs no model. Both speak the internal protocol of :mod:`ocillm.runner.protocol`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from ocillm.runner.errors import RunnerError
from ocillm.runner.protocol import (
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    RerankRequest,
    RerankResponse,
)


class Runner(ABC):
    """One loaded model."""

    @property
    @abstractmethod
    def pid(self) -> int | None: ...

    @abstractmethod
    def is_alive(self) -> bool:
        """False once the process has exited (cheap, no I/O)."""

    @abstractmethod
    async def health(self) -> bool:
        """True when the runner answers its health check."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop the runner and release its memory. Safe to call twice."""

    @abstractmethod
    def completion(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        """Stream a completion; closing the iterator early stops the generation."""

    @abstractmethod
    async def tokenize(
        self, content: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]: ...

    @abstractmethod
    async def detokenize(self, tokens: list[int]) -> str: ...

    @abstractmethod
    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse: ...

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        """One relevance score per document (a reranker model); others cannot."""
        raise RunnerError("this runner cannot rerank", status=400)

    async def complete(self, request: CompletionRequest) -> CompletionChunk:
        """The whole completion as one chunk (``content`` joined, the final metrics)."""
        parts: list[str] = []
        final = CompletionChunk(done=True)
        stream = self.completion(request)
        async for chunk in stream:
            parts.append(chunk.content)
            if chunk.done:
                final = chunk
        return final.model_copy(update={"content": "".join(parts)})

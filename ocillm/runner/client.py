"""``RunnerClient``: the daemon's side of the internal protocol, over httpx (TCP or unix socket)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from ocillm.runner.errors import RunnerError
from ocillm.runner.protocol import (
    CompletionChunk,
    CompletionRequest,
    DetokenizeRequest,
    DetokenizeResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    HealthResponse,
    RerankRequest,
    RerankResponse,
    TokenizeRequest,
    TokenizeResponse,
)


class RunnerUnreachable(RunnerError):
    """The connection to the runner failed or broke (it may have died)."""


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return str(data["error"])
    except ValueError:
        pass
    return body.decode(errors="replace").strip() or "no detail"


class RunnerClient:
    """Talks to one runner at ``http://127.0.0.1:PORT`` or over the unix socket ``uds``."""

    def __init__(self, *, port: int | None = None, uds: str | None = None) -> None:
        if (port is None) == (uds is None):
            raise ValueError("give exactly one of port and uds")
        transport = httpx.AsyncHTTPTransport(uds=uds) if uds else httpx.AsyncHTTPTransport()
        base = "http://runner" if uds else f"http://127.0.0.1:{port}"
        self._http = httpx.AsyncClient(
            base_url=base, transport=transport, timeout=httpx.Timeout(None, connect=10.0)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: Any) -> bytes:
        try:
            resp = await self._http.post(path, content=body.model_dump_json())
        except httpx.HTTPError as err:
            raise RunnerUnreachable(f"runner connection failed: {err!r}") from err
        if resp.status_code != 200:
            raise RunnerError(_error_text(resp.content), status=resp.status_code)
        return resp.content

    async def health(self, timeout: float = 10.0) -> HealthResponse:
        try:
            resp = await self._http.get("/health", timeout=timeout)
        except httpx.HTTPError as err:
            raise RunnerUnreachable(f"runner health check failed: {err!r}") from err
        if resp.status_code != 200:
            raise RunnerError(_error_text(resp.content), status=resp.status_code)
        return HealthResponse.model_validate_json(resp.content)

    async def completion(self, request: CompletionRequest) -> AsyncGenerator[CompletionChunk, None]:
        body = request.model_copy(update={"stream": True}).model_dump_json()
        try:
            async with self._http.stream("POST", "/completion", content=body) as resp:
                if resp.status_code != 200:
                    raise RunnerError(_error_text(await resp.aread()), status=resp.status_code)
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    data = json.loads(line)
                    if "error" in data:
                        raise RunnerError(str(data["error"]))
                    chunk = CompletionChunk.model_validate(data)
                    yield chunk
                    if chunk.done:
                        return
        except httpx.HTTPError as err:
            raise RunnerUnreachable(f"runner connection broke: {err!r}") from err
        raise RunnerUnreachable("runner stream ended before the final chunk")

    async def tokenize(
        self, content: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        req = TokenizeRequest(content=content, add_special=add_special, parse_special=parse_special)
        return TokenizeResponse.model_validate_json(await self._post("/tokenize", req)).tokens

    async def detokenize(self, tokens: list[int]) -> str:
        data = await self._post("/detokenize", DetokenizeRequest(tokens=tokens))
        return DetokenizeResponse.model_validate_json(data).content

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return EmbeddingResponse.model_validate_json(await self._post("/embedding", request))

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        return RerankResponse.model_validate_json(await self._post("/rerank", request))

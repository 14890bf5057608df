"""The runner's HTTP server: stdlib ``ThreadingHTTPServer`` over TCP (127.0.0.1) or a unix socket.

Routes: ``GET /health``, ``POST /completion`` (NDJSON stream, chunked), ``POST /tokenize``,
``POST /detokenize``, ``POST /embedding``, ``POST /rerank``. A client that goes away mid-stream stops its
generation: every sampled token asks whether the connection's socket has reached EOF.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import socketserver
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, ValidationError

from ocillm.runner.engine import Engine
from ocillm.runner.errors import EngineError
from ocillm.runner.protocol import (
    CompletionChunk,
    CompletionRequest,
    DetokenizeRequest,
    DetokenizeResponse,
    EmbeddingRequest,
    HealthResponse,
    RerankRequest,
    TokenizeRequest,
    TokenizeResponse,
    TokenLogprob,
)

log = logging.getLogger(__name__)


def _peer_gone(sock: socket.socket) -> bool:
    """True once the peer closed its end (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class _EngineServer:
    """What the handler needs from either server: the engine."""

    engine: Engine


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without TCP_NODELAY, Nagle's algorithm holds the
    # body until the daemon's delayed ACK (~40 ms on Linux) on every small response.
    disable_nagle_algorithm = True
    server: _EngineServer  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s", format % args)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionResetError, BrokenPipeError):  # the client went away between requests
            self.close_connection = True

    # --- plumbing -------------------------------------------------------------------------

    def _send_json(self, status: int, body: BaseModel | dict[str, Any]) -> None:
        data = (
            body.model_dump_json(exclude_none=True).encode()
            if isinstance(body, BaseModel)
            else json.dumps(body).encode()
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _body(self, model: type[BaseModel]) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        return model.model_validate_json(raw)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # --- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path != "/health":
            self._error(404, f"no route {self.path}")
            return
        idle, busy = self.server.engine.slots
        self._send_json(
            200,
            HealthResponse(
                status="ok",
                slots_idle=idle,
                slots_busy=busy,
                n_ctx=self.server.engine.n_ctx,
                pid=os.getpid(),
            ),
        )

    def do_POST(self) -> None:
        routes: dict[str, tuple[type[BaseModel], Callable[[Any], None]]] = {
            "/completion": (CompletionRequest, self._completion),
            "/tokenize": (TokenizeRequest, self._tokenize),
            "/detokenize": (DetokenizeRequest, self._detokenize),
            "/embedding": (EmbeddingRequest, self._embedding),
            "/rerank": (RerankRequest, self._rerank),
        }
        route = routes.get(self.path)
        if route is None:
            self._error(404, f"no route {self.path}")
            return
        schema, handler = route
        try:
            body = self._body(schema)
        except ValidationError as err:
            self._error(400, str(err))
            return
        try:
            handler(body)
        except EngineError as err:
            self._error(err.status, str(err))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:
            log.exception("runner request failed")
            self._error(500, f"{type(err).__name__}: {err}")

    def _tokenize(self, req: TokenizeRequest) -> None:
        engine = self.server.engine
        tokens = engine.tokenize(req.content, req.add_special, req.parse_special)
        self._send_json(200, TokenizeResponse(tokens=tokens))

    def _detokenize(self, req: DetokenizeRequest) -> None:
        self._send_json(200, DetokenizeResponse(content=self.server.engine.detokenize(req.tokens)))

    def _embedding(self, req: EmbeddingRequest) -> None:
        self._send_json(200, self.server.engine.embed(req))

    def _rerank(self, req: RerankRequest) -> None:
        self._send_json(200, self.server.engine.rerank(req))

    def _completion(self, req: CompletionRequest) -> None:
        sock = self.connection
        chunks = self.server.engine.complete(req, cancelled=lambda: _peer_gone(sock))
        if not req.stream:
            merged = CompletionChunk()
            parts: list[str] = []
            logprobs: list[TokenLogprob] = []
            for chunk in chunks:
                parts.append(chunk.content)
                logprobs.extend(chunk.logprobs or ())
                if chunk.done:
                    merged = chunk
            merged.content = "".join(parts)
            merged.logprobs = logprobs or None
            self._send_json(200, merged)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        finished = False
        try:
            for chunk in chunks:
                self._write_chunk(chunk.model_dump_json(exclude_none=True).encode() + b"\n")
                finished = chunk.done
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:  # the status line is sent: report in the stream
            if not isinstance(err, EngineError):
                log.exception("completion failed mid-stream")
            self._write_chunk(json.dumps({"error": str(err)}).encode() + b"\n")
            finished = True
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if not finished:
            print("runner: completion cancelled: the client went away", file=sys.stderr, flush=True)
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _RunnerHTTPServer(_EngineServer, ThreadingHTTPServer):
    daemon_threads = True


class _RunnerUnixServer(_EngineServer, socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve_tcp(engine: Engine, port: int = 0, host: str = "127.0.0.1") -> _RunnerHTTPServer:
    """A server bound to ``host:port`` (0 = a free port), not yet serving."""
    server = _RunnerHTTPServer((host, port), _Handler)
    server.engine = engine
    return server


class _UnixHandler(_Handler):
    disable_nagle_algorithm = False  # no TCP here

    def address_string(self) -> str:
        return "unix"


def serve_unix(engine: Engine, path: str) -> _RunnerUnixServer:
    if os.path.exists(path):
        os.unlink(path)
    server = _RunnerUnixServer(path, _UnixHandler)
    server.engine = engine
    return server

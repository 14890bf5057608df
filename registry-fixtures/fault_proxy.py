"""A fault-injecting reverse proxy in front of a real registry (tests only).

Stock Distribution never answers 413, never advertises ``OCI-Chunk-Min-Length``, never throttles
and never loses a connection, so the transport's handling of those is exercised here:
:class:`FaultProxy` listens on a free loopback port, forwards every request to the registry
(``Host`` passed through, so the upload ``Location`` URLs the registry builds point back at the
proxy) and streams bodies both ways in 256 KiB pieces, never holding a whole blob. Rules change
what a matching request gets::

    proxy.add_rule(method="PUT", path_regex=r"/blobs/uploads/", min_body=MiB, status=413)
    proxy.add_rule(method="GET", path_regex=r"/manifests/", status=503, times=2)
    proxy.add_rule(status=429, headers={"Retry-After": "1"}, times=1)
    proxy.add_rule(method="PATCH", drop_connection=True, times=1)
    proxy.add_rule(method="GET", path_regex=r"/blobs/sha256:", drop_after=4096, times=1)
    proxy.add_rule(method="POST", path_regex=r"/blobs/uploads/$",
                   add_headers={"OCI-Chunk-Min-Length": "1048576"})

The first rule (in the order added) that matches a request and has uses left applies to it;
``times=None`` means every matching request. ``status`` answers without forwarding (the request
body is read and discarded first, as a front-end proxy refusing it would); ``drop_connection``
closes the socket without an answer; ``drop_after`` forwards but closes the connection after that
many response body bytes; ``add_headers`` forwards and sets those response headers.

Every request is recorded (:attr:`FaultProxy.requests`): method, path with query, headers with
``Authorization`` values reduced to their scheme, request body size, the status the client got
(None when the connection was dropped first), the rule applied, and monotonic start and end times.
The server runs in threads of the test process; :meth:`FaultProxy.close` stops it and closes the
connections still open.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

PIECE = 256 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass
class Rule:
    """What to do to requests matching ``method`` and ``path_regex`` (searched in path+query)."""

    method: str | None = None
    path_regex: str | None = None
    min_body: int | None = None
    """Match only requests whose declared ``Content-Length`` is at least this."""
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Headers of the injected ``status`` answer."""
    body: bytes | None = None
    """Body of the injected answer (default: an OCI error document naming the proxy)."""
    drop_connection: bool = False
    drop_after: int | None = None
    add_headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    """How many matching requests this rule applies to; None: all of them."""
    hits: int = 0

    def matches(self, method: str, path: str, length: int | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path_regex is not None and not re.search(self.path_regex, path):
            return False
        return self.min_body is None or (length is not None and length >= self.min_body)

    def describe(self) -> str:
        if self.status is not None:
            return f"status {self.status}"
        if self.drop_connection:
            return "drop"
        if self.drop_after is not None:
            return f"drop after {self.drop_after}"
        return "add headers"


@dataclass
class Recorded:
    """One request as the proxy saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body_size: int = 0
    status: int | None = None
    injected: str | None = None
    started: float = 0.0
    finished: float = 0.0
    response_bytes: int = 0

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


def _redact(name: str, value: str) -> str:
    if name.lower() in ("authorization", "proxy-authorization"):
        return value.split(" ", 1)[0] + " <redacted>"
    return value


class _Dropped(Exception):
    """The connection to the client was closed on purpose."""


class _Handler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self.connection, add=False)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- the request ---------------------------------------------------------------------------

    def _handle(self) -> None:
        method = self.command
        length_text = self.headers.get("Content-Length")
        length = int(length_text) if length_text and length_text.isdigit() else None
        record = Recorded(
            method=method,
            path=self.path,
            headers={k: _redact(k, v) for k, v in self.headers.items()},
            started=time.monotonic(),
        )
        self.server.proxy._record(record)
        rule = self.server.proxy._take(method, self.path, length)
        record.injected = rule.describe() if rule is not None else None
        try:
            if rule is not None and rule.drop_connection:
                raise _Dropped()
            if rule is not None and rule.status is not None:
                record.body_size = sum(len(p) for p in self._body())
                self._inject(rule, record)
            else:
                self._forward(rule, record)
        except _Dropped:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
        finally:
            record.finished = time.monotonic()

    def _body(self) -> Iterator[bytes]:
        """The request body in pieces (Content-Length or chunked), as the client sends it."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                left = size
                while left > 0:
                    piece = self.rfile.read(min(PIECE, left))
                    if not piece:
                        raise _Dropped()
                    left -= len(piece)
                    yield piece
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            piece = self.rfile.read(min(PIECE, left))
            if not piece:
                raise _Dropped()
            left -= len(piece)
            yield piece

    def _inject(self, rule: Rule, record: Recorded) -> None:
        status = rule.status
        assert status is not None
        body = rule.body
        if body is None:
            error = {"code": "INJECTED", "message": f"fault proxy answered {status}"}
            body = json.dumps({"errors": [error]}).encode()
        if self.command == "HEAD":
            body = b""
        self.send_response_only(status)
        names = {k.lower() for k in rule.headers}
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        for key, value in rule.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        record.status = status
        record.response_bytes = len(body)

    def _forward(self, rule: Rule | None, record: Recorded) -> None:
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
        try:
            chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    upstream.putheader(key, value)
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            try:
                upstream.endheaders()
                for piece in self._body():
                    record.body_size += len(piece)
                    if chunked:
                        upstream.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                    else:
                        upstream.send(piece)
                if chunked:
                    upstream.send(b"0\r\n\r\n")
                response = upstream.getresponse()
            except OSError as e:
                self._bad_gateway(record, e)
                return
            self._relay(response, rule, record)
        finally:
            upstream.close()

    def _bad_gateway(self, record: Recorded, error: OSError) -> None:
        body = json.dumps(
            {"errors": [{"code": "BAD_GATEWAY", "message": f"upstream: {type(error).__name__}"}]}
        ).encode()
        self.send_response_only(502)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        record.status = 502

    def _relay(
        self, response: http.client.HTTPResponse, rule: Rule | None, record: Recorded
    ) -> None:
        self.send_response_only(response.status, response.reason)
        extra = rule.add_headers if rule is not None else {}
        override = {k.lower() for k in extra}
        has_length = response.getheader("Content-Length") is not None
        bodiless = self.command == "HEAD" or response.status in (204, 304)
        rechunk = not bodiless and not has_length
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() not in override:
                self.send_header(key, value)
        for key, value in extra.items():
            self.send_header(key, value)
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        record.status = response.status
        limit = rule.drop_after if rule is not None else None
        if bodiless:
            self.wfile.flush()
            return
        while True:
            want = PIECE if limit is None else min(PIECE, limit - record.response_bytes)
            piece = response.read(want) if want > 0 else b""
            if piece:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if rechunk else piece)
                record.response_bytes += len(piece)
            if limit is not None and record.response_bytes >= limit:
                self.wfile.flush()
                raise _Dropped()
            if not piece:
                break
        if rechunk:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FaultProxy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.proxy = proxy
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer is part of the game here

    def track(self, sock: socket.socket, *, add: bool) -> None:
        with self._open_lock:
            if add:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_all(self) -> None:
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class FaultProxy:
    """A reverse proxy to ``upstream`` (``127.0.0.1:PORT``, plain HTTP) with injected faults."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream_host = host
        self.upstream_port = int(port)
        self._rules: list[Rule] = []
        self._requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of a reference that goes through the proxy."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> FaultProxy:
        if self._server is None:
            self._server = _ProxyServer(self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"fault-proxy-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- rules ---------------------------------------------------------------------------------

    def add_rule(
        self,
        method: str | None = None,
        path_regex: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        times: int | None = None,
        drop_connection: bool = False,
        drop_after: int | None = None,
        add_headers: dict[str, str] | None = None,
        min_body: int | None = None,
    ) -> Rule:
        rule = Rule(
            method=method,
            path_regex=path_regex,
            min_body=min_body,
            status=status,
            headers=dict(headers or {}),
            body=body,
            drop_connection=drop_connection,
            drop_after=drop_after,
            add_headers=dict(add_headers or {}),
            times=times,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def _take(self, method: str, path: str, length: int | None) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path, length):
                    rule.hits += 1
                    return rule
        return None

    # -- the record ----------------------------------------------------------------------------

    def _record(self, record: Recorded) -> None:
        with self._lock:
            self._requests.append(record)

    @property
    def requests(self) -> list[Recorded]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def matching(self, method: str | None = None, path_regex: str | None = None) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method)
            and (path_regex is None or re.search(path_regex, r.path))
        ]

    def reset_log(self) -> None:
        with self._lock:
            self._requests.clear()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaultProxy(url={self.url!r}, upstream={self.upstream_host}:{self.upstream_port})"

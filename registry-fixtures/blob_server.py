"""A stand-in for the CDN or object store a registry redirects blob GETs to (tests only).

``python blob_server.py serve --port P --root DIR --log FILE [--ignore-range]`` serves the files
under ``DIR`` for GET/HEAD, answering ``Range: bytes=A-B`` with 206 and a Content-Range (unless
``--ignore-range``: then always 200 and the whole file, as some proxies do). Each request is
appended to ``FILE`` as JSON (path, whether an Authorization header came, the Range asked), so
tests can prove credentials never reach it.

Distribution's ``redirect`` storage middleware (``baseurl`` = this server) sends blob GETs here
with a 307; :class:`BlobServer` runs it as a child process on a free loopback port, stopped by
its PID.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from procutil import free_port, stop_process  # registry-fixtures/procutil.py

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        ask = self.headers.get("Range")
        with self.server.lock, self.server.log.open("a") as log:
            entry = {"path": self.path, "authorization": "Authorization" in self.headers}
            log.write(json.dumps({**entry, "range": ask}) + "\n")
        path = (self.server.root / self.path.split("?", 1)[0].lstrip("/")).resolve()
        if not path.is_file() or self.server.root not in path.parents:
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        match = _RANGE.match(ask or "")
        partial = bool(match) and not self.server.ignore_range
        if partial and match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
            if start > end:
                self.send_error(416)
                return
        self.send_response(206 if partial else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "none" if self.server.ignore_range else "bytes")
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            with path.open("rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    chunk = f.read(min(1 << 20, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, root: Path, log: Path, ignore_range: bool) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.root = root.resolve()
        self.log = log
        self.ignore_range = ignore_range
        self.lock = threading.Lock()


def _serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="blob_server.py serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--ignore-range", action="store_true")
    args = parser.parse_args(argv)
    server = _Server(args.port, args.root, args.log, args.ignore_range)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


class BlobServer:
    """The server as a child process; ``url`` uses the name ``localhost`` so that it is another
    host than the registry's ``127.0.0.1`` as far as any client can tell."""

    def __init__(self, root: Path, workdir: Path, *, ignore_range: bool = False) -> None:
        self.root = Path(root)
        self.workdir = Path(workdir)
        self.ignore_range = ignore_range
        self.port = free_port()
        self.log = self.workdir / "blob-server.jsonl"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def start(self, timeout: float = 10.0) -> BlobServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(Path(__file__).resolve()), "serve", "--port", str(self.port),
                "--root", str(self.root), "--log", str(self.log)]  # fmt: skip
        if self.ignore_range:
            argv.append("--ignore-range")
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2)
            except urllib.error.HTTPError:
                break  # a 404 means it answers
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("blob server did not start") from None
                time.sleep(0.05)
        self.log.unlink(missing_ok=True)  # the readiness probe is not a client request
        return self

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self._proc, timeout)
        self._proc = None


def redirect_config(baseurl: str) -> str:
    """The Distribution config fragment that redirects blob GETs to ``baseurl``."""
    return (
        "middleware:\n  storage:\n    - name: redirect\n      options:\n"
        f"        baseurl: {baseurl}\n"
    )


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "serve":
        sys.exit("usage: blob_server.py serve --port PORT --root DIR --log FILE")
    _serve(sys.argv[2:])

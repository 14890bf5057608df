"""A small Docker token issuer that Distribution's ``auth: token`` config trusts (tests only).

``python token_issuer.py serve --port P --dir DIR`` answers ``GET /token?service=…&scope=…`` (and
the OAuth2 ``POST /token`` form Docker uses for refresh tokens). HTTP Basic credentials are checked
against ``DIR/users.json`` (plain ``{"user": "password"}``: a test fixture, nothing more); a
known user gets every ``pull``/``push`` action it asks for, an anonymous caller gets an empty
access list, wrong credentials get 401. Tokens are RS256 JWTs whose header carries the signing
certificate (``x5c``); Distribution verifies that chain against ``rootcertbundle`` = ``DIR/cert.pem``.

The key and self-signed certificate are made once per directory with the ``openssl`` CLI, which
also signs each token (``openssl dgst -sha256 -sign``: PKCS#1 v1.5, which is what RS256 is).
Every request is appended to ``DIR/requests.jsonl`` (account, scopes, granted) so tests can check
which scopes a client asked for, and in what order.

:class:`TokenIssuer` runs that server as a child process on a free loopback port and stops it by
its PID.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from procutil import free_port, stop_process  # registry-fixtures/procutil.py

SERVICE = "ocillm-test-registry"
ISSUER = "ocillm-test-issuer"
TOKEN_SECONDS = 300


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ensure_keypair(directory: Path) -> tuple[Path, Path]:
    """``DIR/key.pem`` (RSA 2048) and ``DIR/cert.pem`` (self-signed), made with openssl once."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / "key.pem", directory / "cert.pem"
    if not (key.exists() and cert.exists()):
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                "-days", "2", "-subj", "/CN=ocillm-test-token-issuer",
                "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return key, cert


def _cert_der_b64(cert: Path) -> str:
    pem = cert.read_text()
    body = pem.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
    return "".join(body.split())  # the base64 DER, as x5c wants it (standard alphabet)


def sign_jwt(claims: dict[str, Any], key: Path, cert: Path) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5c": [_cert_der_b64(cert)]}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key)],
        input=signing_input.encode(),
        check=True,
        capture_output=True,
    ).stdout
    return signing_input + "." + _b64url(signature)


def parse_scope(scope: str) -> dict[str, Any] | None:
    """``repository:ns/name:pull,push`` -> an access entry (None for what we do not grant)."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    kind, actions = parts[0], parts[-1]
    name = ":".join(parts[1:-1])
    if kind != "repository":
        return None
    wanted = [a for a in actions.split(",") if a in ("pull", "push")]
    return {"type": kind, "name": name, "actions": wanted}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _account(self) -> tuple[str | None, bool]:
        """(user, ok): no header -> (None, True); wrong credentials -> (user, False)."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None, True
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None, False
        users = json.loads((self.server.directory / "users.json").read_text())
        return user, users.get(user) == password and bool(user)

    def _issue(self, account: str | None, scopes: list[str], service: str) -> dict[str, Any]:
        access = []
        if account is not None:
            access = [a for a in (parse_scope(s) for s in scopes) if a and a["actions"]]
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": account or "",
            "aud": service,
            "exp": now + TOKEN_SECONDS,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        token = sign_jwt(
            claims, self.server.directory / "key.pem", self.server.directory / "cert.pem"
        )
        self._log({"account": account, "scopes": scopes, "granted": access})
        return {"token": token, "access_token": token, "expires_in": TOKEN_SECONDS}

    def _log(self, entry: dict[str, Any]) -> None:
        with self.server.lock, (self.server.directory / "requests.jsonl").open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _denied(self, account: str | None) -> None:
        self._log({"account": account, "scopes": [], "granted": None, "denied": True})
        self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        query = urllib.parse.parse_qs(url.query)
        account, ok = self._account()
        if not ok:
            self._denied(account)
            return
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        self._reply(200, self._issue(account, scopes, query.get("service", [SERVICE])[0]))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        users = json.loads((self.server.directory / "users.json").read_text())
        grant = form.get("grant_type", [""])[0]
        account: str | None = None
        if grant == "password":
            account = form.get("username", [""])[0]
            if users.get(account) != form.get("password", [None])[0]:
                self._denied(account)
                return
        elif grant == "refresh_token":
            refresh = form.get("refresh_token", [""])[0]
            account = refresh.partition(":")[2] if refresh.startswith("refresh:") else None
            if account not in users:
                self._denied(account)
                return
        else:
            self._reply(400, {"errors": [{"code": "UNSUPPORTED", "message": grant}]})
            return
        scopes = [s for value in form.get("scope", []) for s in value.split(" ") if s]
        body = self._issue(account, scopes, form.get("service", [SERVICE])[0])
        body["refresh_token"] = f"refresh:{account}"
        self._reply(200, body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, directory: Path) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.directory = directory
        self.lock = threading.Lock()


def _serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="token_issuer.py serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    server = _Server(args.port, args.dir)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


class TokenIssuer:
    """The issuer as a child process in ``directory`` (keys, ``users.json``, ``requests.jsonl``)."""

    def __init__(self, directory: Path, users: dict[str, str], port: int | None = None) -> None:
        self.directory = Path(directory)
        self.users = dict(users)
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self.key, self.cert = ensure_keypair(self.directory)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def requests(self) -> list[dict[str, Any]]:
        """Every token request so far, oldest first."""
        path = self.directory / "requests.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def start(self, timeout: float = 10.0) -> TokenIssuer:
        if self._proc is not None and self._proc.poll() is None:
            return self
        (self.directory / "users.json").write_text(json.dumps(self.users))
        log = (self.directory / "issuer.log").open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--port", str(self.port),
             "--dir", str(self.directory)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"token issuer exited: see {self.directory / 'issuer.log'}")
            try:
                with urllib.request.urlopen(f"{self.realm}?service={SERVICE}", timeout=2):
                    return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("token issuer did not answer in time") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self._proc, timeout)
        self._proc = None


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "serve":
        sys.exit("usage: token_issuer.py serve --port PORT --dir DIR")
    _serve(sys.argv[2:])

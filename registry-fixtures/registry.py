"""A real Distribution registry (``docker-registry serve CONFIG``) for tests.

Each :class:`RegistryProcess` owns a working directory holding its rendered config, its storage
and its log; it listens on a free loopback port and is stopped by its PID (SIGTERM, then SIGKILL),
never by name. ``stop()`` then ``start()`` (or ``restart()``) brings it back on the same port with
the same storage, so tests can interrupt transfers or prove that data survived.

Authentication variants, each a config template in this folder:

* ``none``     -- ``config-noauth.yml``: anonymous pull and push.
* ``htpasswd`` -- ``config-htpasswd.yml``: HTTP Basic auth; the htpasswd file (bcrypt) is written
  at start from ``users``.
* ``token``    -- ``config-token.yml``: Docker token auth. The registry owns a
  :class:`token_issuer.TokenIssuer` (a child process on its own free port, in ``workdir/token``)
  that signs RS256 JWTs with a key whose certificate is the registry's ``rootcertbundle``;
  ``start()``/``stop()`` start and stop both. ``.token_issuer.requests()`` lists the scopes
  clients asked for.

``tls=(cert, key)`` serves HTTPS (``make_tls_cert`` writes a self-signed pair for 127.0.0.1).
``extra_config`` is YAML appended to the rendered config (e.g. ``blob_server.redirect_config``
to send blob GETs to another host, as registries backed by S3 or a CDN do).

Templates use :class:`string.Template` placeholders: ``${port}``, ``${storage}``, ``${secret}``
and the variant's own (``${htpasswd}``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import string
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from procutil import free_port, stop_process  # registry-fixtures/procutil.py
from token_issuer import ISSUER, SERVICE, TokenIssuer

HERE = Path(__file__).resolve().parent

#: Auth variant -> config template file in this folder.
CONFIG_TEMPLATES: dict[str, str] = {
    "none": "config-noauth.yml",
    "htpasswd": "config-htpasswd.yml",
    "token": "config-token.yml",
}

#: Environment variable naming the registry binary (default: ``docker-registry`` on PATH).
BINARY_ENV = "OCILLM_TEST_REGISTRY_BIN"
DEFAULT_BINARY = "docker-registry"
FALLBACK_PATHS = ("/usr/bin/docker-registry", "/usr/local/bin/docker-registry")


class RegistryUnavailable(RuntimeError):
    """The Distribution binary is missing or the registry did not come up."""


def find_registry_binary() -> str:
    """The path of the ``docker-registry`` binary, or raise :class:`RegistryUnavailable`."""
    configured = os.environ.get(BINARY_ENV)
    if configured:
        if Path(configured).is_file() and os.access(configured, os.X_OK):
            return configured
        raise RegistryUnavailable(f"{BINARY_ENV}={configured!r} is not an executable file")
    found = shutil.which(DEFAULT_BINARY)
    if found:
        return found
    for candidate in FALLBACK_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    raise RegistryUnavailable(
        "docker-registry (Distribution, Debian package 'docker-registry') is not installed: "
        "run the README's test command, which installs it, or set "
        f"{BINARY_ENV} to the binary"
    )


def hash_password(password: str) -> str:
    """A bcrypt hash of ``password`` for an htpasswd file (Distribution accepts only bcrypt)."""
    try:
        import bcrypt
    except ImportError:
        pass
    else:
        # Cost 5 keeps tests fast; Distribution accepts any valid bcrypt cost.
        hashed: bytes = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5))
        return hashed.decode()
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        raise RegistryUnavailable(
            "bcrypt is needed for an htpasswd registry: install the 'bcrypt' package "
            "(in the test extra) or apache2-utils"
        )
    out = subprocess.run(
        [htpasswd, "-nbBC", "5", "user", password], check=True, capture_output=True, text=True
    ).stdout.strip()
    return out.split(":", 1)[1]


def make_tls_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for 127.0.0.1 and localhost, made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "tls-cert.pem", directory / "tls-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    """Write an htpasswd file with a bcrypt entry per ``user: password``."""
    lines = [f"{user}:{hash_password(password)}" for user, password in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class RegistryProcess:
    """One ``docker-registry serve`` process in ``workdir`` (config, ``storage/``, log)."""

    def __init__(
        self,
        workdir: Path,
        *,
        auth: str = "none",
        users: dict[str, str] | None = None,
        port: int | None = None,
        binary: str | None = None,
        start_timeout: float = 20.0,
        extra_config: str = "",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        if auth not in CONFIG_TEMPLATES:
            raise ValueError(f"unknown registry auth {auth!r}: one of {sorted(CONFIG_TEMPLATES)}")
        if auth in ("htpasswd", "token") and not users:
            users = {"ocillm": "ocillm-test-password"}
        self.workdir = Path(workdir)
        self.auth = auth
        self.users: dict[str, str] = dict(users or {})
        self.binary = binary or find_registry_binary()
        self.start_timeout = start_timeout
        self.extra_config = extra_config
        self.tls = tls  # (certificate, key): serve HTTPS with them
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self.storage: Path = self.workdir / "storage"
        self.config_path: Path = self.workdir / "config.yml"
        self.log_path: Path = self.workdir / "registry.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.token_issuer: TokenIssuer | None = None
        if auth == "token":
            self.token_issuer = TokenIssuer(self.workdir / "token", self.users)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with ``tls``)."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def username(self) -> str | None:
        return next(iter(self.users), None)

    @property
    def password(self) -> str | None:
        user = self.username
        return self.users[user] if user is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------

    def _auth_variables(self) -> dict[str, str]:
        if self.auth == "htpasswd":
            path = write_htpasswd(self.workdir / "htpasswd", self.users)
            return {"htpasswd": str(path)}
        if self.token_issuer is not None:
            return {
                "realm": self.token_issuer.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.token_issuer.cert),
            }
        return {}

    def render_config(self) -> Path:
        """Write ``config.yml`` from this variant's template and return its path."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        template = string.Template((HERE / CONFIG_TEMPLATES[self.auth]).read_text())
        secret = hashlib.sha256(str(self.workdir).encode()).hexdigest()
        variables = {"port": str(self.port), "storage": str(self.storage), "secret": secret}
        variables.update(self._auth_variables())
        self.config_path.write_text(template.substitute(variables) + self.extra_config)
        return self.config_path

    def start(self) -> RegistryProcess:
        """Start the registry and wait until ``GET /v2/`` answers. Returns ``self``."""
        if self.running:
            return self
        if self.token_issuer is not None:
            self.token_issuer.start()
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self.render_config()
            with self.log_path.open("ab") as log:
                env = dict(os.environ)
                if self.tls:  # Distribution reads any config key from REGISTRY_<PATH>
                    env["REGISTRY_HTTP_TLS_CERTIFICATE"] = str(self.tls[0])
                    env["REGISTRY_HTTP_TLS_KEY"] = str(self.tls[1])
                self._proc = subprocess.Popen(
                    [self.binary, "serve", str(self.config_path)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                )
            try:
                self._wait_ready()
                return self
            except RegistryUnavailable:
                self.stop()
                if attempt + 1 >= attempts or "address already in use" not in self.log_tail():
                    raise
                self.port = free_port()  # someone took our port between probe and bind
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise RegistryUnavailable(
                    f"docker-registry exited with status {code} at start; log {self.log_path}:\n"
                    + self.log_tail()
                )
            status = self.probe()
            if status in (200, 401):
                return
            if time.monotonic() > deadline:
                raise RegistryUnavailable(
                    f"docker-registry did not answer GET {self.url}/v2/ within "
                    f"{self.start_timeout:.0f}s; log {self.log_path}:\n" + self.log_tail()
                )
            time.sleep(0.05)

    def probe(self) -> int | None:
        """HTTP status of ``GET /v2/`` without credentials, or None when nothing answers."""
        try:
            context = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2, context=context) as resp:
                status: int = resp.status
                return status
        except urllib.error.HTTPError as err:
            return err.code
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process by its PID: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        stop_process(self._proc, timeout)
        self._proc = None
        if self.token_issuer is not None:
            self.token_issuer.stop()

    def restart(self) -> RegistryProcess:
        """Stop and start again on the same port with the same storage."""
        self.stop()
        self._fixed_port = True
        return self.start()

    def log_tail(self, n_bytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-n_bytes:].decode(errors="replace")

    def __enter__(self) -> RegistryProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RegistryProcess(auth={self.auth!r}, url={self.url!r}, pid={self.pid})"

"""One registry repository over HTTP: oras-py's ``Registry`` with what it lacks filled in.

oras-py's client keeps its session (cookies ignored, as Harbor needs), its container URL helpers
and its paginated tag listing; this subclass replaces ``do_request`` so that every request,
inherited ones included, goes through ocillm's authentication (scopes per action, token refresh),
retries (connection errors, 5xx, 429 with Retry-After, backoff with jitter), redirects (never
forwarding ``Authorization`` to another host) and scheme choice (https; http for loopback and
insecure registries). Blob bodies are streamed both ways; nothing here reads a blob into memory.
"""

from __future__ import annotations

import ipaddress
import random
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import oras.provider
import requests
import requests.adapters

from ocillm import __version__
from ocillm.errors import RegistryError
from ocillm.oci import mediatypes as mt
from ocillm.oci.reference import Reference
from ocillm.registry.auth import Authenticator, repository_scope
from ocillm.registry.credentials import Credentials
from ocillm.registry.options import MiB, RetryNotice, TransferOptions

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_MANIFEST = 4 * MiB


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


Body = bytes | Readable | None


def is_loopback(registry: str) -> bool:
    host = urllib.parse.urlsplit(f"//{registry}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_host(registry: str) -> str:
    """Docker Hub's API lives on registry-1.docker.io; every other registry on its own name."""
    return "registry-1.docker.io" if registry in ("docker.io", "index.docker.io") else registry


def system_ca_bundle() -> bool | str:
    """``SSL_CERT_FILE`` or the system bundle (OpenSSL's default path); True: requests' own."""
    paths = ssl.get_default_verify_paths()
    return paths.cafile or True


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class _Adapter(requests.adapters.HTTPAdapter):
    """Connection pool sized for parallel transfers; 1 MiB socket writes for streamed bodies."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **kwargs: Any
    ) -> None:
        kwargs.setdefault("blocksize", MiB)
        super().init_poolmanager(connections, maxsize, block, **kwargs)


class RegistryClient(oras.provider.Registry):  # type: ignore[misc]
    """Requests against ``ref``'s repository on ``ref``'s registry, authorised for ``actions``."""

    def __init__(
        self,
        ref: Reference,
        options: TransferOptions | None = None,
        *,
        actions: str = "pull",
        credentials: Credentials | None = None,
    ) -> None:
        self.options = options or TransferOptions()
        self.ref = ref
        self.registry = ref.registry
        self.host = api_host(ref.registry)
        self.verify: bool | str = (
            str(self.options.ca_file) if self.options.ca_file else system_ca_bundle()
        )
        super().__init__(
            hostname=self.host, insecure=self.options.plain_http, tls_verify=self.verify
        )
        pool = max(16, self.options.concurrency * 2)
        adapter = _Adapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = f"ocillm/{__version__}"
        self.timeout = (self.options.connect_timeout, self.options.read_timeout)
        self.authenticator = Authenticator(
            self.registry,
            str(ref),
            self.options.credentials.find,
            self.session,
            self.verify,
            self.timeout,
        )
        if credentials is not None:
            self.authenticator.set_credentials(credentials)
        self.authenticator.set_scopes((repository_scope(ref.repository, actions),))
        self._base: str | None = None

    # -- scheme and reachability ---------------------------------------------------------------

    def _schemes(self) -> list[str]:
        if self.options.plain_http:
            return ["http"]
        listed = self.options.insecure_registries
        insecure = self.registry in listed or self.host in listed
        return ["https", "http"] if insecure or is_loopback(self.host) else ["https"]

    @property
    def base(self) -> str:
        if self._base is None:
            self.ping()
        assert self._base is not None
        return self._base

    def ping(self) -> int:
        """``GET /v2/``: choose the scheme, learn how the registry wants to authenticate."""
        last: str = "no attempt"
        tls_error: str | None = None
        attempts = max(1, self.options.retries)
        for attempt in range(attempts):
            for scheme in self._schemes():
                url = f"{scheme}://{self.host}/v2/"
                try:
                    response = self.session.get(url, verify=self.verify, timeout=self.timeout)
                except requests.exceptions.SSLError as e:
                    if "CERTIFICATE_VERIFY_FAILED" in str(e) or "certificate verify" in str(e):
                        tls_error = "TLS certificate not trusted (use --ca-file or SSL_CERT_FILE)"
                    last = "TLS handshake failed"
                    continue
                except requests.RequestException as e:
                    last = f"cannot connect ({_kind(e)})"
                    continue
                response.close()
                if scheme == "http" and response.status_code == 400 and tls_error:
                    break  # an HTTPS server answering our plain request: the TLS error counts
                self._base = f"{scheme}://{self.host}"
                self.prefix = scheme  # oras-py's own URL building uses this
                if response.status_code == 401:
                    self.authenticator.unauthorized(response, sent=False)
                status: int = response.status_code
                return status
            if tls_error:
                raise RegistryError(self.registry, str(self.ref), None, tls_error)
            if attempt + 1 < attempts:
                self.pause_before_retry(attempt + 1, attempts, f"{self.host}: {last}")
        raise RegistryError(self.registry, str(self.ref), None, last)

    def set_scopes(self, *scopes: str) -> None:
        self.authenticator.set_scopes(tuple(scopes))

    def authorize(self) -> None:
        """Ping, then get a token for this operation's scopes before the first real request."""
        self.ping()
        self.authenticator.header()

    # -- requests ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Body = None,
        stream: bool = False,
        retries: int | None = None,
    ) -> requests.Response:
        """Send with auth, redirects and retries; the caller checks the status."""
        url = self.url(path)
        attempts = max(1, self.options.retries if retries is None else retries)
        replayable = data is None or isinstance(data, bytes)
        for attempt in range(attempts):
            last = attempt + 1 >= attempts or not replayable
            try:
                response = self._send(method, url, dict(headers or {}), data, stream)
            except requests.RequestException as e:
                if last:
                    raise RegistryError(
                        self.registry, str(self.ref), None, f"{method} failed: {_kind(e)}"
                    ) from None
                reason = f"{self.host}: {method} failed: {_kind(e)}"
                self.pause_before_retry(attempt + 1, attempts, reason)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                delay = retry_after(response) or None
                response.close()
                reason = f"{self.host}: {method} answered HTTP {response.status_code}"
                self.pause_before_retry(attempt + 1, attempts, reason, delay)
                continue
            return response
        raise AssertionError("unreachable")

    def _send(
        self, method: str, url: str, headers: dict[str, str], data: Body, stream: bool
    ) -> requests.Response:
        for auth_try in range(2):
            sent = dict(headers)
            auth = self.authenticator.header() if _origin(url) == _origin(self.base) else {}
            sent.update(auth)
            response = self._follow(method, url, sent, data, stream)
            if (
                response.status_code == 401
                and auth_try == 0
                and (data is None or isinstance(data, bytes))
                and self.authenticator.unauthorized(response, sent=bool(auth))
            ):
                response.close()
                continue
            return response
        raise AssertionError("unreachable")

    def _follow(
        self, method: str, url: str, headers: dict[str, str], data: Body, stream: bool
    ) -> requests.Response:
        """Follow GET/HEAD redirects ourselves: Authorization never leaves the registry's origin."""
        origin = _origin(url)
        for _ in range(10):
            response: requests.Response = self.session.request(
                method,
                url,
                headers=headers,
                data=data,
                stream=stream,
                allow_redirects=False,
                verify=self.verify,
                timeout=self.timeout,
            )
            location = response.headers.get("Location")
            if (
                response.status_code not in REDIRECTS
                or not location
                or method not in ("GET", "HEAD")
            ):
                return response
            response.close()
            url = urllib.parse.urljoin(url, location)
            if _origin(url) != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryError(self.registry, str(self.ref), None, "too many redirects")

    def _backoff(self, attempt: int) -> float:
        delay = min(self.options.backoff_cap, self.options.backoff * (2**attempt))
        return float(delay * random.uniform(0.5, 1.5))

    def pause_before_retry(
        self, failures: int, attempts: int, reason: str, delay: float | None = None
    ) -> None:
        """Wait before attempt ``failures + 1`` (backoff, or the registry's ``delay``), and say so
        through ``options.on_retry``: a registry that is down must not look like a hang."""
        wait = self._backoff(failures - 1) if delay is None else delay
        if self.options.on_retry is not None:
            self.options.on_retry(RetryNotice(wait, failures + 1, attempts, reason))
        time.sleep(wait)

    def fail(self, response: requests.Response, what: str) -> RegistryError:
        """The one-line error for an unexpected response (never echoes credentials)."""
        status = response.status_code
        if status in (401, 403):
            detail = f"{what}: {self.authenticator.describe_failure()}"
        else:
            detail = f"{what}: {_error_text(response)}"
        response.close()
        return RegistryError(self.registry, str(self.ref), status, detail)

    # oras-py's inherited helpers (tags, delete) go through our request path.
    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: Any = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        stream: bool = False,
    ) -> requests.Response:
        body: Body = data if isinstance(data, bytes) or data is None else str(data).encode()
        if json is not None:
            import json as _json

            body = _json.dumps(json).encode()
        return self.request(method, url, headers=headers, data=body, stream=stream)

    # -- manifests -----------------------------------------------------------------------------

    def manifest_path(self, target: str) -> str:
        return f"/v2/{self.ref.repository}/manifests/{target}"

    def blob_path(self, digest: str) -> str:
        return f"/v2/{self.ref.repository}/blobs/{digest}"

    def fetch_manifest(self, target: str) -> tuple[bytes, str, str | None]:
        """(bytes as sent, media type, Docker-Content-Digest) of a manifest or index."""
        response = self.request(
            "GET", self.manifest_path(target), headers={"Accept": mt.MANIFEST_ACCEPT}, stream=True
        )
        if response.status_code == 404:
            response.close()
            raise RegistryError(self.registry, str(self.ref), 404, "manifest not found")
        if response.status_code != 200:
            raise self.fail(response, "GET manifest")
        data = bytearray()
        for chunk in response.iter_content(64 * 1024):
            data += chunk
            if len(data) > MAX_MANIFEST:
                response.close()
                raise RegistryError(self.registry, str(self.ref), 200, "manifest too large")
        media = response.headers.get("Content-Type", "").split(";")[0].strip()
        return bytes(data), media, response.headers.get("Docker-Content-Digest")

    def put_manifest(self, target: str, data: bytes, media_type: str) -> str | None:
        response = self.request(
            "PUT", self.manifest_path(target), headers={"Content-Type": media_type}, data=data
        )
        if response.status_code not in (200, 201, 202):
            raise self.fail(response, "PUT manifest")
        response.close()
        return response.headers.get("Docker-Content-Digest")

    # -- blobs ---------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        response = self.request("HEAD", self.blob_path(digest))
        response.close()
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self.fail(response, f"HEAD blob {digest}")

    def blob_exists(self, layer: dict[str, Any], container: Any) -> bool:
        return self.has_blob(str(layer["digest"]))

    def get_blob_stream(
        self, digest: str, start: int | None = None, end: int | None = None
    ) -> requests.Response:
        """A streamed GET of ``digest``, bytes ``start..end`` inclusive when given (not checked)."""
        headers: dict[str, str] = {}
        if start is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        return self.request("GET", self.blob_path(digest), headers=headers, stream=True, retries=1)

    def mount_blob(self, digest: str, source: str) -> str | None:
        """Cross-repository mount; None when mounted, else the upload session it opened."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        response = self.request("POST", f"/v2/{self.ref.repository}/blobs/uploads/?{query}")
        response.close()
        if response.status_code == 201:
            return None
        if response.status_code == 202 and response.headers.get("Location"):
            return self._location(response)
        raise self.fail(response, f"mount {digest}")

    def start_upload(self) -> tuple[str, int]:
        """(upload URL, OCI-Chunk-Min-Length or 0)."""
        response = self.request("POST", f"/v2/{self.ref.repository}/blobs/uploads/")
        response.close()
        if response.status_code != 202 or not response.headers.get("Location"):
            raise self.fail(response, "start upload")
        minimum = response.headers.get("OCI-Chunk-Min-Length", "")
        return self._location(response), int(minimum) if minimum.isdigit() else 0

    def _location(self, response: requests.Response) -> str:
        return urllib.parse.urljoin(response.url or self.base, response.headers["Location"])


def with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _kind(e: BaseException) -> str:
    text = str(e)
    for marker in ("Connection refused", "Name or service not known", "timed out", "reset"):
        if marker in text:
            return f"{type(e).__name__}: {marker}"
    return type(e).__name__


def retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(60.0, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(60.0, when.timestamp() - time.time()))


def _error_text(response: requests.Response) -> str:
    """The registry's OCI error (``errors[0].code: message``) or the reason phrase."""
    try:
        body = response.json() if response.content else {}
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors and isinstance(errors[0], dict):
            code = errors[0].get("code", "")
            message = errors[0].get("message", "")
            return f"{code}: {message}".strip(": ") or response.reason
    except (ValueError, RuntimeError):
        pass
    return response.reason or "unexpected response"

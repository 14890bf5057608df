"""Registry authentication: anonymous, Basic, and Docker token auth with per-action scopes.

An :class:`Authenticator` belongs to one client talking to one registry for one operation; it
is told the scopes that operation needs (a push asks ``pull,push`` on its repository, plus
``pull`` on the repositories it mounts from) and fetches a token for exactly those before the
first request that needs it. Tokens are refreshed when they expire or a request is refused.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from ocillm.errors import RegistryError
from ocillm.registry.credentials import Credentials

_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str | None) -> Challenge | None:
    """``WWW-Authenticate: Bearer realm="…",service="…",scope="…"`` -> Challenge."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM_RE.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def repository_scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


class Authenticator:
    """Adds the right ``Authorization`` header; learns the scheme from the first 401."""

    def __init__(
        self,
        registry: str,
        reference: str,
        lookup: Callable[[str], Credentials | None],
        session: requests.Session,
        verify: bool | str,
        timeout: tuple[float, float],
    ) -> None:
        self.registry = registry
        self.reference = reference
        self._lookup = lookup
        self._session = session
        self._verify = verify
        self._timeout = timeout
        self.scopes: tuple[str, ...] = ()
        self.challenge: Challenge | None = None
        self._credentials: Credentials | None = None
        self._looked_up = False
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()

    # -- what the client calls -------------------------------------------------------------

    def set_scopes(self, scopes: tuple[str, ...]) -> None:
        with self._lock:
            if scopes != self.scopes:
                self.scopes = scopes
                self._token = None

    def set_credentials(self, credentials: Credentials | None) -> None:
        self._credentials = credentials
        self._looked_up = True

    def header(self) -> dict[str, str]:
        """The Authorization header for the next request ({} while anonymous works)."""
        c = self.challenge
        if c is None:
            return {}
        if c.scheme == "basic":
            creds = self.credentials()
            if creds is None or creds.username is None or creds.password is None:
                return {}
            return {"Authorization": _basic(creds.username, creds.password)}
        if c.scheme == "bearer":
            with self._lock:
                if self._token is None or time.monotonic() > self._token_expires:
                    self._fetch_token()
                return {"Authorization": f"Bearer {self._token}"} if self._token else {}
        return {}

    def unauthorized(self, response: requests.Response, *, sent: bool) -> bool:
        """A 401 came back: learn the scheme and scope from it. True when a retry may succeed."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            return False
        with self._lock:
            self.challenge = challenge
            if challenge.scheme == "bearer":
                wanted = challenge.params.get("scope", "")
                extra = tuple(s for s in wanted.split(" ") if s and s not in self.scopes)
                self.scopes = self.scopes + extra
                self._token = None
                return True
        if sent:
            return False  # the Basic credentials we sent were refused
        creds = self.credentials()
        return creds is not None and creds.password is not None

    def credentials(self) -> Credentials | None:
        if not self._looked_up:
            self._credentials = self._lookup(self.registry)
            self._looked_up = True
        return self._credentials

    def describe_failure(self) -> str:
        creds = self.credentials()
        if creds is None:
            return f"authentication required: run `ocillm login {self.registry}` or set OCILLM_REGISTRY_USERNAME/OCILLM_REGISTRY_PASSWORD"
        return f"access denied with the credentials from {creds.source}"

    # -- token auth ------------------------------------------------------------------------

    def _fetch_token(self) -> None:
        assert self.challenge is not None
        realm = self.challenge.params.get("realm")
        if not realm:
            raise RegistryError(
                self.registry, self.reference, 401, "token challenge without a realm"
            )
        service = self.challenge.params.get("service")
        creds = self.credentials()
        if creds is not None and creds.identity_token:
            response = self._oauth_refresh(realm, service, creds.identity_token)
        else:
            params: list[tuple[str, str]] = []
            if service:
                params.append(("service", service))
            params += [("scope", s) for s in self.scopes]
            headers = {}
            if creds is not None and creds.username is not None and creds.password is not None:
                params.append(("account", creds.username))
                headers["Authorization"] = _basic(creds.username, creds.password)
            response = self._token_request("GET", realm, params=params, headers=headers)
        if response.status_code in (401, 403):
            raise RegistryError(
                self.registry, self.reference, response.status_code, self._refused(creds)
            )
        if response.status_code != 200:
            raise RegistryError(
                self.registry, self.reference, response.status_code, f"token service {realm} failed"
            )
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise RegistryError(
                self.registry, self.reference, 200, "token service sent no JSON"
            ) from None
        token = body.get("token") or body.get("access_token")
        if not token:
            # Some registries answer an anonymous request with an empty token: go on without one.
            self._token = ""
        else:
            self._token = str(token)
        expires = body.get("expires_in")
        lifetime = float(expires) if isinstance(expires, (int, float)) and expires > 0 else 60.0
        self._token_expires = time.monotonic() + max(lifetime - 10.0, lifetime / 2)

    def _oauth_refresh(self, realm: str, service: str | None, token: str) -> requests.Response:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": "ocillm",
            "service": service or "",
            "scope": " ".join(self.scopes),
        }
        return self._token_request("POST", realm, data=form)

    def _token_request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(
                method, url, verify=self._verify, timeout=self._timeout, **kwargs
            )
        except requests.RequestException as e:
            raise RegistryError(
                self.registry,
                self.reference,
                None,
                f"token service unreachable: {type(e).__name__}",
            ) from None

    def _refused(self, creds: Credentials | None) -> str:
        if creds is None:
            return "authentication required: run `ocillm login " + self.registry + "`"
        return f"authentication failed with the credentials from {creds.source}"


def _basic(username: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

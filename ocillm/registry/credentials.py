"""Where registry credentials come from, in order, and where ``ocillm login`` keeps them.

1. ``OCILLM_REGISTRY_USERNAME`` / ``OCILLM_REGISTRY_PASSWORD`` (CI);
2. ``ocillm login``: ``$OCILLM_HOME/auth.json``, Docker's ``config.json`` format, mode 0600;
3. podman's ``REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``;
4. Docker's ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json`` -- ``auths``,
   ``credHelpers`` and ``credsStore``, resolved by the ``docker`` package exactly as Docker does.

Files 2-4 all go through ``docker.auth`` so credential helpers work in each. Credentials are
looked up only when a registry asks for them, and never printed: :class:`Credentials` hides the
secret from ``repr`` and errors name only where the credentials came from.

Which sources exist is decided once, from :class:`~ocillm.config.Settings`, into a
:class:`CredentialSources` (``CredentialSources.from_settings``); nothing here reads the
environment. ``CredentialSources()`` has no source at all: anonymous access.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocillm.config import Settings
from ocillm.errors import OcillmError
from ocillm.store.locks import atomic_write, file_lock

DOCKER_HUB = "docker.io"
DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")


class CredentialError(OcillmError):
    """A credential file or helper that cannot be read."""


@dataclass(frozen=True)
class Credentials:
    username: str | None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str = ""


def login_file(settings: Settings) -> Path:
    """Where ``ocillm login`` keeps credentials: ``$OCILLM_HOME/auth.json``."""
    return settings.home / "auth.json"


@dataclass(frozen=True)
class CredentialSources:
    """The places credentials are looked up in, in order; a None place is skipped."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    login_file: Path | None = None
    podman_file: Path | None = None
    docker_config: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialSources:
        return cls(
            username=settings.registry_username,
            password=settings.registry_password,
            login_file=login_file(settings),
            podman_file=settings.podman_auth_file,
            docker_config=settings.docker_config,
        )

    def find(self, registry: str) -> Credentials | None:
        """The credentials for ``registry`` (host[:port]) from the first source that has them."""
        if self.username and self.password is not None:
            return Credentials(
                self.username, self.password, None, "OCILLM_REGISTRY_USERNAME/PASSWORD"
            )
        # Named by what they are, not where: errors reach API clients, and a path tells them
        # about the server's filesystem (docs/registries.md says where each file is).
        places = (
            (self.login_file, "the ocillm login credentials file"),
            (self.podman_file, "the podman registry credentials file"),
            (self.docker_config, "the Docker registry credentials file"),
        )
        for path, source in places:
            if path is not None:
                found = _from_docker_auth(registry, path, source)
                if found:
                    return found
        return None


def _from_docker_auth(registry: str, config_path: Path, source: str) -> Credentials | None:
    """Resolve ``registry`` in a Docker-format file."""
    import docker.auth
    import docker.errors

    if not config_path.is_file():
        return None
    key = "https://index.docker.io/v1/" if registry in DOCKER_HUB_KEYS else registry
    try:
        config = docker.auth.load_config(str(config_path))
        if (
            not config.get("auths")
            and not config.get("credsStore")
            and not config.get("credHelpers")
        ):
            return None
        entry = config.resolve_authconfig(key)
    except docker.errors.DockerException as e:
        raise CredentialError(f"{source}: cannot read credentials for {registry}: {e}") from None
    except (OSError, ValueError) as e:
        raise CredentialError(f"{source}: cannot read credentials for {registry}: {e}") from None
    if not entry:
        return None
    return _credentials(entry, source)


def _credentials(entry: dict[str, Any], source: str) -> Credentials | None:
    token = entry.get("IdentityToken") or entry.get("identitytoken")
    user = entry.get("Username") or entry.get("username")
    password = entry.get("Password") or entry.get("password")
    if token:
        return Credentials(user, None, str(token), source)
    if user and password is not None:
        return Credentials(str(user), str(password), None, source)
    return None


def store_login(path: Path, registry: str, username: str, password: str) -> Path:
    """Write ``registry``'s credentials into ``path`` (``$OCILLM_HOME/auth.json``, 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.parent / "locks" / "auth.lock"):
        data = _read(path)
        encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
        data.setdefault("auths", {})[registry] = {"auth": encoded}
        _write(path, data)
    return path


def remove_login(path: Path, registry: str) -> bool:
    """Forget ``registry`` in ``path``; False when ``ocillm login`` held nothing for it."""
    with file_lock(path.parent / "locks" / "auth.lock"):
        data = _read(path)
        auths = data.get("auths", {})
        if registry not in auths:
            return False
        del auths[registry]
        _write(path, data)
    return True


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise CredentialError(f"the ocillm login credentials file is not valid JSON: {e}") from None
    return value if isinstance(value, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    old = os.umask(0o077)
    try:
        atomic_write(path, json.dumps(data, indent=2).encode() + b"\n")
    finally:
        os.umask(old)
    path.chmod(0o600)

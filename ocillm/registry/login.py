"""``login`` / ``logout``: check credentials against the registry, then keep or forget them."""

from __future__ import annotations

from pathlib import Path

from ocillm.errors import RegistryError
from ocillm.oci.reference import Reference
from ocillm.registry.client import RegistryClient, api_host
from ocillm.registry.credentials import Credentials, remove_login, store_login
from ocillm.registry.options import TransferOptions


def login(
    registry: str,
    username: str,
    password: str,
    *,
    login_file: Path,
    options: TransferOptions | None = None,
) -> Path:
    """Verify ``username``/``password`` with ``registry``; store them in ``login_file``
    (``$OCILLM_HOME/auth.json``); return it.

    Basic registries must answer ``GET /v2/`` with 200 given the credentials; token registries
    must issue a token for them (as ``docker login`` checks).
    """
    host = _host(registry)
    ref = Reference(host, "login-check", "latest")
    client = RegistryClient(
        ref, options, credentials=Credentials(username, password, None, "the login command")
    )
    client.set_scopes()
    try:
        status = client.ping()
        if status == 401:
            response = client.request("GET", "/v2/")
            response.close()
            status = response.status_code
    except RegistryError as e:
        if e.status not in (401, 403):
            raise
        status = e.status
    if status in (401, 403):
        raise RegistryError(host, host, status, "login refused: wrong username or password")
    if status not in (200, 401):
        raise RegistryError(host, host, status, "login: unexpected answer to GET /v2/")
    return store_login(login_file, host, username, password)


def logout(registry: str, *, login_file: Path) -> bool:
    """Forget what ``ocillm login`` stored for ``registry`` in ``login_file``; False when there
    was nothing."""
    return remove_login(login_file, _host(registry))


def _host(registry: str) -> str:
    host = registry.strip().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if not host:
        raise RegistryError(registry, registry, None, "name a registry host, e.g. ghcr.io")
    return "docker.io" if api_host(host) == "registry-1.docker.io" else host

"""Authentication against real registries: htpasswd Basic and Docker token auth.

Credentials come from ``ocillm login``, the environment, Docker's config (auths and a real
credential-helper program), and podman's auth file; failures are one line that names the
registry, the reference and the status, and never shows a password.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import BASIC_PASSWORD, BASIC_USERNAME, CLI
from test_registry_transfer import build_tiny, error_lines


@pytest.fixture
def no_creds(tmp_path: Path) -> dict[str, str]:
    """An environment where no ambient Docker/podman credentials can leak in."""
    docker = tmp_path / "docker-empty"
    docker.mkdir()
    return {
        "DOCKER_CONFIG": str(docker),
        "REGISTRY_AUTH_FILE": str(tmp_path / "no-podman-auth.json"),
        "OCILLM_REGISTRY_USERNAME": "",
        "OCILLM_REGISTRY_PASSWORD": "",
    }


def auth_registry(request: pytest.FixtureRequest, kind: str) -> Any:
    return request.getfixturevalue("registry_basic" if kind == "basic" else "registry_token")


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_login_push_pull_logout(
    request: pytest.FixtureRequest, kind: str, cli: CLI, tiny_gguf: Path, ocillm_home: Path,
    no_creds: dict[str, str],
) -> None:  # fmt: skip
    reg = auth_registry(request, kind)
    ref = f"{reg.host}/team/tiny:1"
    built = build_tiny(cli, tiny_gguf, ref)
    login = cli(
        "login", reg.host, "-u", BASIC_USERNAME, "--password-stdin",
        input=BASIC_PASSWORD + "\n", env=no_creds,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout and BASIC_PASSWORD not in login.stdout
    auth_file = ocillm_home / "auth.json"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    assert reg.host in json.loads(auth_file.read_text())["auths"]

    assert cli("push", ref, "--quiet", env=no_creds).stdout.strip() == built
    cli("rm", ref, check=True)
    pulled = cli("pull", ref, "--quiet", env=no_creds)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == built

    assert "Removed" in cli("logout", reg.host, check=True).stdout
    assert "Not logged in" in cli("logout", reg.host, check=True).stdout
    cli("rm", ref, check=True)
    denied = cli("pull", ref, env=no_creds)
    assert denied.returncode == 1
    (line,) = error_lines(denied.stderr)
    assert reg.host in line and "401" in line and "ocillm login" in line


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_wrong_password_is_one_clear_line_and_exit_1(
    request: pytest.FixtureRequest, kind: str, cli: CLI, tiny_gguf: Path,
    no_creds: dict[str, str],
) -> None:  # fmt: skip
    reg = auth_registry(request, kind)
    wrong = "not-the-Pa55word"
    login = cli(
        "login", reg.host, "-u", BASIC_USERNAME, "--password-stdin", input=wrong, env=no_creds
    )
    assert login.returncode == 1
    (line,) = error_lines(login.stderr)
    assert reg.host in line and "401" in line and "refused" in line
    assert wrong not in login.stdout + login.stderr

    ref = f"{reg.host}/team/tiny:1"
    build_tiny(cli, tiny_gguf, ref)
    env = {
        **no_creds,
        "OCILLM_REGISTRY_USERNAME": BASIC_USERNAME,
        "OCILLM_REGISTRY_PASSWORD": wrong,
    }
    push = cli("push", ref, "--json", env=env)
    assert push.returncode == 1
    (line,) = error_lines(push.stderr)
    assert reg.host in line and "team/tiny:1" in line and "401" in line
    assert "OCILLM_REGISTRY_USERNAME" in line  # where the refused credentials came from
    assert wrong not in push.stdout + push.stderr


def test_push_asks_for_push_scope_before_its_first_head(
    registry_token: Any, cli: CLI, tiny_gguf: Path, no_creds: dict[str, str]
) -> None:
    ref = f"{registry_token.host}/team/scoped:1"
    build_tiny(cli, tiny_gguf, ref)
    env = {
        **no_creds,
        "OCILLM_REGISTRY_USERNAME": BASIC_USERNAME,
        "OCILLM_REGISTRY_PASSWORD": BASIC_PASSWORD,
    }
    out = cli("push", ref, env=env)
    assert out.returncode == 0, out.stderr
    asked = [r["scopes"] for r in registry_token.token_issuer.requests() if r["scopes"]]
    assert asked, "no token was requested"
    assert all(s == ["repository:team/scoped:pull,push"] for s in asked), asked
    assert len(asked) == 1  # one token serves every HEAD, upload and the manifest

    cli("rm", ref, check=True)
    assert cli("pull", ref, env=env).returncode == 0
    last = [r["scopes"] for r in registry_token.token_issuer.requests() if r["scopes"]][-1]
    assert last == ["repository:team/scoped:pull"]  # a pull asks for no more than it needs


def test_anonymous_push_to_a_token_registry_names_registry_reference_status(
    registry_token: Any, cli: CLI, tiny_gguf: Path, no_creds: dict[str, str]
) -> None:
    ref = f"{registry_token.host}/team/anon:1"
    build_tiny(cli, tiny_gguf, ref)
    out = cli("push", ref, env=no_creds)
    assert out.returncode == 1
    (line,) = error_lines(out.stderr)
    assert registry_token.host in line and "team/anon:1" in line and "HTTP 401" in line


def _docker_config(tmp_path: Path, content: dict[str, Any]) -> dict[str, str]:
    folder = tmp_path / "docker-config"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(content))
    return {"DOCKER_CONFIG": str(folder)}


def test_credentials_from_docker_config_auths(
    registry_basic: Any, cli: CLI, tiny_gguf: Path, tmp_path: Path, no_creds: dict[str, str]
) -> None:
    ref = f"{registry_basic.host}/team/docker:1"
    built = build_tiny(cli, tiny_gguf, ref)
    auth = base64.b64encode(f"{BASIC_USERNAME}:{BASIC_PASSWORD}".encode()).decode()
    env = {**no_creds, **_docker_config(tmp_path, {"auths": {registry_basic.host: {"auth": auth}}})}
    out = cli("push", ref, "--quiet", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == built


def test_credentials_from_a_docker_credential_helper(
    registry_token: Any, cli: CLI, tiny_gguf: Path, tmp_path: Path, no_creds: dict[str, str]
) -> None:
    helper_dir = tmp_path / "bin"
    helper_dir.mkdir()
    helper = helper_dir / "docker-credential-ocillmtest"
    reply = json.dumps(
        {"ServerURL": registry_token.host, "Username": BASIC_USERNAME, "Secret": BASIC_PASSWORD}
    )
    helper.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat >/dev/null\necho '{reply}'\n")
    helper.chmod(0o755)
    ref = f"{registry_token.host}/team/helper:1"
    build_tiny(cli, tiny_gguf, ref)
    config = {"credHelpers": {registry_token.host: "ocillmtest"}}
    env = {
        **no_creds,
        **_docker_config(tmp_path, config),
        "PATH": f"{helper_dir}{os.pathsep}{os.environ['PATH']}",
    }
    out = cli("push", ref, env=env)
    assert out.returncode == 0, out.stderr
    accounts = {r["account"] for r in registry_token.token_issuer.requests() if r["scopes"]}
    assert accounts == {BASIC_USERNAME}


def test_credentials_from_podman_auth_file(
    registry_basic: Any, cli: CLI, tiny_gguf: Path, tmp_path: Path, no_creds: dict[str, str]
) -> None:
    auth = base64.b64encode(f"{BASIC_USERNAME}:{BASIC_PASSWORD}".encode()).decode()
    podman = tmp_path / "podman-auth.json"
    podman.write_text(json.dumps({"auths": {registry_basic.host: {"auth": auth}}}))
    ref = f"{registry_basic.host}/team/podman:1"
    build_tiny(cli, tiny_gguf, ref)
    out = cli("push", ref, env={**no_creds, "REGISTRY_AUTH_FILE": str(podman)})
    assert out.returncode == 0, out.stderr


def test_identity_token_uses_the_oauth2_refresh_grant(
    registry_token: Any, cli: CLI, tiny_gguf: Path, tmp_path: Path, no_creds: dict[str, str]
) -> None:
    ref = f"{registry_token.host}/team/identity:1"
    build_tiny(cli, tiny_gguf, ref)
    config = {"auths": {registry_token.host: {"identitytoken": f"refresh:{BASIC_USERNAME}"}}}
    env = {**no_creds, **_docker_config(tmp_path, config)}
    out = cli("push", ref, env=env)
    assert out.returncode == 0, out.stderr
    granted = [r for r in registry_token.token_issuer.requests() if r.get("granted")]
    assert granted and granted[-1]["account"] == BASIC_USERNAME

"""The trust policy: ``pull`` and ``build FROM registry/…`` check it before any blob moves,
``serve`` checks the store's copy again before a load (an image loaded from a tar, not pulled,
cannot bypass it); ``enforce`` refuses in one line, ``warn`` goes on and says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from conftest import CLI
from server_fixtures import ServerProcess
from test_registry_transfer import error_lines
from trust_support import keypair, pushed_image, write_policy


def _fresh(tmp_path: Path, name: str) -> dict[str, str]:
    home = tmp_path / name
    return {"OCILLM_HOME": str(home), "OCILLM_MODELS": str(home / "models")}


def _enforce(tmp_path: Path, registry: Any, pub: Path, mode: str = "enforce") -> Path:
    return write_policy(
        tmp_path / "policy.json",
        {
            "default": "off",
            "rules": [{"match": f"{registry.host}/secure/*", "mode": mode, "keys": [str(pub)]}],
        },
    )


def test_enforce_refuses_an_unsigned_image_on_pull_and_allows_a_signed_one(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    unsigned = f"{registry.host}/secure/bot:unsigned"
    signed = f"{registry.host}/secure/bot:signed"
    pushed_image(cli, tiny_gguf, unsigned, "--label", "v=unsigned")
    digest = pushed_image(cli, tiny_gguf, signed)
    key, pub = keypair(cli, tmp_path)
    cli("sign", signed, "--key", key, check=True)
    policy = _enforce(tmp_path, registry, pub)
    env = _fresh(tmp_path, "puller")

    refused = cli("pull", unsigned, "--policy", policy, env=env)
    assert refused.returncode == 1
    [line] = error_lines(refused.stderr)
    assert unsigned in line and "refused by trust policy" in line and "no signature" in line
    assert "unsigned" not in cli("list", env=env).stdout  # nothing tagged

    allowed = cli("pull", signed, "--policy", policy, "-q", env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == digest
    # The verified signature was kept, so the store's copy verifies offline.
    assert cli("verify", signed, "--key", pub, "--local", env=env).returncode == 0


def test_policy_in_ocillm_home_applies_without_the_flag(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/secure/bot:home"
    pushed_image(cli, tiny_gguf, ref)
    _key, pub = keypair(cli, tmp_path)
    env = _fresh(tmp_path, "homed")
    Path(env["OCILLM_HOME"]).mkdir()
    write_policy(
        Path(env["OCILLM_HOME"]) / "policy.json",
        {"default": "enforce", "keys": [str(pub)]},
    )
    refused = cli("pull", ref, env=env)
    assert refused.returncode == 1 and "refused by trust policy" in refused.stderr


def test_warn_pulls_an_unsigned_image_and_says_so(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/secure/bot:warned"
    pushed_image(cli, tiny_gguf, ref)
    _key, pub = keypair(cli, tmp_path)
    policy = _enforce(tmp_path, registry, pub, mode="warn")
    pulled = cli("pull", ref, "--policy", policy, env=_fresh(tmp_path, "w"))
    assert pulled.returncode == 0, pulled.stderr
    assert f"warning: {ref}: no signature" in pulled.stderr


def test_repositories_outside_the_rules_are_not_checked(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/open/bot:1"
    pushed_image(cli, tiny_gguf, ref)
    _key, pub = keypair(cli, tmp_path)
    policy = _enforce(tmp_path, registry, pub)
    assert cli("pull", ref, "--policy", policy, env=_fresh(tmp_path, "o")).returncode == 0


def test_a_broken_policy_is_an_error_not_off(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/secure/bot:broken"
    pushed_image(cli, tiny_gguf, ref)
    policy = write_policy(tmp_path / "bad.json", {"default": "maybe"})
    result = cli("pull", ref, "--policy", policy, env=_fresh(tmp_path, "b"))
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert str(policy) in line and "'maybe' is not one of off, warn, enforce" in line


def test_build_from_a_registry_image_checks_the_policy(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    base = f"{registry.host}/secure/base:1"
    pushed_image(cli, tiny_gguf, base)
    key, pub = keypair(cli, tmp_path)
    policy = _enforce(tmp_path, registry, pub)
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {base}\nSYSTEM derived\n")
    env = _fresh(tmp_path, "builder")
    refused = cli("build", "-f", modelfile, "-t", "derived:1", "--policy", policy, env=env)
    assert refused.returncode == 1
    assert base in refused.stderr and "no signature" in refused.stderr

    cli("sign", base, "--key", key, check=True)
    built = cli("build", "-f", modelfile, "-t", "derived:1", "--policy", policy, env=env)
    assert built.returncode == 0, built.stderr


def test_serve_refuses_to_load_an_unsigned_image_loaded_from_a_tar(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    unsigned = f"{registry.host}/secure/bot:tar"
    signed = f"{registry.host}/secure/bot:ok"
    pushed_image(cli, tiny_gguf, unsigned, "--label", "v=tar")
    pushed_image(cli, tiny_gguf, signed)
    key, pub = keypair(cli, tmp_path)
    cli("sign", signed, "--key", key, check=True)
    tar = tmp_path / "unsigned.tar"
    cli("save", unsigned, "-o", tar, "-q", check=True)

    home = tmp_path / "served"
    env = {"OCILLM_HOME": str(home), "OCILLM_MODELS": str(home / "models")}
    cli("load", "-i", tar, "-q", env=env, check=True)  # around pull, so around its check
    cli("pull", signed, "-q", "--with-referrers", env=env, check=True)
    _enforce(home, registry, pub)  # $OCILLM_HOME/policy.json

    server = ServerProcess(home, {"OCILLM_RUNNER_SPARE": "0"}).start()
    try:
        body = {"prompt": "hi", "stream": False, "options": {"num_predict": 1}}
        refused = httpx.post(
            f"{server.url}/api/generate", json={"model": unsigned, **body}, timeout=120
        )
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert unsigned in error and "no signature" in error
        ok = httpx.post(f"{server.url}/api/generate", json={"model": signed, **body}, timeout=120)
        assert ok.status_code == 200, ok.text
    finally:
        assert server.stop() == 0, server.log()[-3000:]

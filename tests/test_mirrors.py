"""OCILLM_REGISTRY_MIRRORS: pulls try each mirror in order, fall back to the origin, verify every
digest, and `pull --json` names the host that served each blob. Real Distribution registries:
one mirror with the image, one that 404s, one that is down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from procutil import free_port
from server_fixtures import build_model

from ocillm.oci.reference import parse_reference
from ocillm.registry import push
from ocillm.registry.mirrors import Mirror, parse_mirrors
from ocillm.store import Store


def _published(tmp_path: Path, gguf: Path, *hosts: str) -> None:
    models = tmp_path / "src"
    build_model(models, gguf, "team/tiny:1")
    store = Store.open(models)
    for host in hosts:
        push(parse_reference("team/tiny:1"), store, target=parse_reference(f"{host}/team/tiny:1"))


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_mirror_urls_parse() -> None:
    m = parse_mirrors(
        "registry.ollama.ai=https://harbor.local/v2/ollama-proxy,docker.io=http://m:5000"
    )
    assert m["registry.ollama.ai"] == (Mirror("harbor.local", "ollama-proxy", False),)
    assert m["docker.io"] == (Mirror("m:5000", "", True),)
    ref = parse_reference("llama3.2")
    assert (
        str(m["registry.ollama.ai"][0].reference(ref))
        == "harbor.local/ollama-proxy/library/llama3.2:latest"
    )


def test_down_and_404_mirrors_fall_through_to_the_one_with_the_image(
    cli: Any, registry_factory: Any, tmp_path: Path, tiny_gguf: Path
) -> None:
    origin = registry_factory()
    empty = registry_factory()
    mirror = registry_factory()
    _published(tmp_path, tiny_gguf, origin.host, mirror.host)
    down = f"127.0.0.1:{free_port()}"
    mirrors = ",".join(f"{origin.host}=http://{h}" for h in (down, empty.host, mirror.host))
    done = cli("pull", f"{origin.host}/team/tiny:1", "--json",
               env={"OCILLM_REGISTRY_MIRRORS": mirrors}, check=True)  # fmt: skip
    hosts = {e["digest"]: e.get("host") for e in _events(done.stdout) if e.get("digest")}
    assert hosts and set(hosts.values()) == {mirror.host}


def test_no_mirror_has_it_the_origin_serves(
    cli: Any, registry_factory: Any, tmp_path: Path, tiny_gguf: Path
) -> None:
    origin = registry_factory()
    empty = registry_factory()
    _published(tmp_path, tiny_gguf, origin.host)
    env = {"OCILLM_REGISTRY_MIRRORS": f"{origin.host}=http://{empty.host}"}
    done = cli("pull", f"{origin.host}/team/tiny:1", "--json", env=env, check=True)
    hosts = {e.get("host") for e in _events(done.stdout) if e.get("digest")}
    assert hosts == {origin.host}


def test_registries_json_in_ocillm_home(
    cli: Any, ocillm_home: Path, registry_factory: Any, tmp_path: Path, tiny_gguf: Path
) -> None:
    origin = registry_factory()
    mirror = registry_factory()
    _published(tmp_path, tiny_gguf, origin.host, mirror.host)
    (ocillm_home / "registries.json").write_text(
        json.dumps({"mirrors": {origin.host: [f"http://{mirror.host}/v2/"]}})
    )
    origin.stop()  # the origin is gone: only the mirror can serve
    done = cli("pull", f"{origin.host}/team/tiny:1", "--json", check=True)
    assert {e.get("host") for e in _events(done.stdout) if e.get("digest")} == {mirror.host}

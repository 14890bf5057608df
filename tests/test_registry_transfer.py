"""Push and pull against a real Distribution registry: round trips, skipping, mounting, chunking,
format conversion, progress output, and ``build --push`` / ``FROM registry/...``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI

from ocillm.oci import parse_reference
from ocillm.registry import TransferOptions, pull, push
from ocillm.store import Store


def build_tiny(cli: CLI, tiny_gguf: Path, ref: str, *extra: str) -> str:
    modelfile = tiny_gguf.parent / "Modelfile.registry"
    modelfile.write_text(f"FROM {tiny_gguf}\nPARAMETER temperature 0.5\nSYSTEM be brief\n")
    out = cli("build", "-f", modelfile, "-t", ref, "--quiet", *extra, check=True)
    return out.stdout.strip().splitlines()[-1]


def error_lines(stderr: str) -> list[str]:
    """The ``Error:`` lines (progress lines go to stderr too when it is not a terminal)."""
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_push_then_pull_round_trip_keeps_the_manifest_digest(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/tiny:1"
    built = build_tiny(cli, tiny_gguf, ref)
    pushed = cli("push", ref, "--quiet")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == built

    other = {"OCILLM_HOME": str(tmp_path / "other"), "OCILLM_MODELS": str(tmp_path / "other/m")}
    pulled = cli("pull", ref, env=other)
    assert pulled.returncode == 0, pulled.stderr
    assert built in pulled.stdout and "modelpack" in pulled.stdout
    listed = cli("list", "--json", env=other, check=True)
    (model,) = json.loads(listed.stdout)["models"]
    assert model["digest"] == built.split(":", 1)[1]
    shown = cli("show", ref, "--system", env=other, check=True)
    assert "be brief" in shown.stdout


def test_pull_reports_ollama_progress_events_as_ndjson(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/tiny:json"
    build_tiny(cli, tiny_gguf, ref)
    cli("push", ref, "--quiet", check=True)
    other = {"OCILLM_HOME": str(tmp_path / "o"), "OCILLM_MODELS": str(tmp_path / "o/m")}
    out = cli("pull", ref, "--json", env=other, check=True)
    got = events(out.stdout)
    statuses = [e["status"] for e in got]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layer = [e for e in got if e["status"].startswith("pulling ") and e.get("total", 0) > 100_000]
    assert layer and layer[-1]["completed"] == layer[-1]["total"]
    assert layer[-1]["status"] == "pulling " + layer[-1]["digest"][7:19]


def test_repush_skips_every_blob_the_registry_has(
    ocillm_home: Path, cli: CLI, registry: Any, tiny_gguf: Path
) -> None:
    ref = f"{registry.host}/team/tiny:again"
    build_tiny(cli, tiny_gguf, ref)
    store = Store.open(ocillm_home / "models")
    first = push(parse_reference(ref), store)
    assert first.stats.uploaded == 4 and first.stats.existing == 0  # config, model, params, system
    second = push(parse_reference(ref), store)
    assert second.stats.uploaded == 0 and second.stats.existing == 4
    assert second.stats.bytes_sent == 0 and second.digest == first.digest


def test_push_mounts_blobs_from_another_repository_of_the_registry(
    ocillm_home: Path, cli: CLI, registry: Any, tiny_gguf: Path
) -> None:
    ref = f"{registry.host}/team-a/tiny:1"
    build_tiny(cli, tiny_gguf, ref)
    cli("push", ref, "--quiet", check=True)
    copy = f"{registry.host}/team-b/tiny:1"
    cli("tag", ref, copy, check=True)
    result = push(parse_reference(copy), Store.open(ocillm_home / "models"))
    assert result.stats.mounted == 4 and result.stats.uploaded == 0


def test_chunked_upload_when_asked(
    ocillm_home: Path, cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/chunked:1"
    built = build_tiny(cli, tiny_gguf, ref)
    out = cli("push", ref, "--chunk-size", "100K", "--quiet")
    assert out.returncode == 0, out.stderr
    store = Store.open(tmp_path / "fresh")
    result = pull(parse_reference(ref), store)
    assert result.digest == built and result.stats.downloaded == result.size


def test_pull_by_digest_and_a_wrong_digest_is_refused(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/tiny:pin"
    built = build_tiny(cli, tiny_gguf, ref)
    cli("push", ref, "--quiet", check=True)
    pinned = f"{registry.host}/team/tiny@{built}"
    result = pull(parse_reference(pinned), Store.open(tmp_path / "s"))
    assert result.digest == built
    wrong = f"{registry.host}/team/tiny@sha256:{'0' * 64}"
    other = {"OCILLM_HOME": str(tmp_path / "o"), "OCILLM_MODELS": str(tmp_path / "o/m")}
    out = cli("pull", wrong, env=other)
    assert out.returncode == 1
    (line,) = error_lines(out.stderr)
    assert registry.host in line and "404" in line


def test_push_ollama_format_says_the_digest_changed(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/tiny:ollama"
    built = build_tiny(cli, tiny_gguf, ref)
    out = cli("push", ref, "--format", "ollama")
    assert out.returncode == 0, out.stderr
    assert "digest changed" in out.stderr and built in out.stderr
    result = pull(parse_reference(ref), Store.open(tmp_path / "s"))
    assert result.format == "ollama" and result.digest != built
    assert result.media_type == "application/vnd.docker.distribution.manifest.v2+json"


def test_build_push_and_from_a_registry_base(
    cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    base = f"{registry.host}/team/base:1"
    built = build_tiny(cli, tiny_gguf, base, "--push")
    child = tmp_path / "Modelfile.child"
    child.write_text(f"FROM {base}\nPARAMETER temperature 0.9\n")
    fresh = {"OCILLM_HOME": str(tmp_path / "f"), "OCILLM_MODELS": str(tmp_path / "f/m")}
    out = cli("build", "-f", child, "-t", "child:1", env=fresh)
    assert out.returncode == 0, out.stderr
    listed = {m["name"]: m for m in json.loads(cli("list", "--json", env=fresh).stdout)["models"]}
    assert listed[base.replace(":1", ":1")]["digest"] == built.split(":", 1)[1]
    assert "child:1" in listed


def test_pull_of_a_missing_tag_is_one_line_naming_registry_and_reference(
    cli: CLI, registry: Any
) -> None:
    out = cli("pull", f"{registry.host}/nobody/nothing:1")
    assert out.returncode == 1
    (line,) = error_lines(out.stderr)
    assert registry.host in line and "nobody/nothing:1" in line and "404" in line


def test_transfer_options_reach_the_registry(
    ocillm_home: Path, cli: CLI, registry: Any, tiny_gguf: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/team/tiny:serial"
    built = build_tiny(cli, tiny_gguf, ref)
    store = Store.open(ocillm_home / "models")
    one = TransferOptions(concurrency=1, plain_http=True)
    assert push(parse_reference(ref), store, options=one).digest == built
    assert pull(parse_reference(ref), Store.open(tmp_path / "s"), options=one).digest == built


@pytest.mark.parametrize("flag", ["--concurrency=0", "--chunk-size=lots"])
def test_bad_transfer_flags_are_usage_errors(cli: CLI, flag: str) -> None:
    out = cli("push", "127.0.0.1:1/x/y:1", flag)
    assert out.returncode == 2 and "Traceback" not in out.stderr

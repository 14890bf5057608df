"""`ocillm lint` checks syntax and meaning, so CI can run it before the weights exist; a FROM
naming a store blob path (as `ollama show --modelfile` prints) builds from the local store."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import CLI

from ocillm.modelfile import blob_digest


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    modelfile = folder / "Modelfile"
    modelfile.write_text(text)
    return modelfile


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_missing_from_file_is_a_warning_that_names_the_instruction(
    cli: CLI, tmp_path: Path, ocillm_home: Path
) -> None:
    modelfile = _write(
        tmp_path / "p", "# weights come later\nPARAMETER temperature 0.5\n\nFROM ./model.gguf\n"
    )
    result = cli("lint", "-f", modelfile)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"{modelfile}:4:1: warning: FROM ./model.gguf: no such file"
    ]
    assert result.stdout.strip() == f"{modelfile}: ok (1 warning)"
    strict = cli("lint", "-f", modelfile, "--strict")
    assert strict.returncode == 1
    assert "warning: FROM ./model.gguf: no such file" in strict.stderr
    assert "ok" not in strict.stdout
    assert not (ocillm_home / "models").exists(), "lint must not create a store"


def test_a_missing_adapter_is_a_warning_too(cli: CLI, tmp_path: Path, tiny_gguf: Path) -> None:
    folder = tmp_path / "p"
    modelfile = _write(folder, "FROM ./tiny.gguf\nADAPTER ./lora.gguf\n")
    shutil.copy(tiny_gguf, folder / "tiny.gguf")
    result = cli("lint", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"{modelfile}:2:1: warning: ADAPTER ./lora.gguf: no such file"
    assert cli("lint", "--strict", cwd=folder).returncode == 1
    shutil.copy(tiny_gguf, folder / "lora.gguf")
    clean = cli("lint", "--strict", cwd=folder)
    assert (clean.returncode, clean.stderr, clean.stdout.strip()) == (0, "", f"{modelfile}: ok")


def test_errors_still_fail_and_json_says_which_is_which(cli: CLI, tmp_path: Path) -> None:
    modelfile = _write(tmp_path / "p", "FROM ./missing.gguf\nPARAMETER temperature hot\n")
    result = cli("lint", "-f", modelfile)
    assert result.returncode == 1
    assert f"{modelfile}:1:1: warning: FROM ./missing.gguf: no such file" in result.stderr
    assert f"{modelfile}:2:" in result.stderr and "invalid float value" in result.stderr
    found = json.loads(cli("lint", "-f", modelfile, "--json").stdout)
    assert [(e["line"], e["severity"]) for e in found] == [(1, "warning"), (2, "error")]
    assert found[0]["message"] == "FROM ./missing.gguf: no such file"
    assert cli("lint", "-f", modelfile, "--json").returncode == 1


def test_a_reference_from_is_not_a_file_warning(cli: CLI, tmp_path: Path) -> None:
    modelfile = _write(tmp_path / "p", "FROM acme/base:1\nSYSTEM hi\n")
    result = cli("lint", "-f", modelfile, "--strict")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


@pytest.mark.parametrize(
    "path",
    [
        "/root/.ollama/models/blobs/sha256-{hex}",
        "C:\\Users\\me\\.ollama\\models\\blobs\\sha256-{hex}",
        "/home/ci/.ocillm/models/blobs/sha256/{hex}",
    ],
)
def test_store_blob_paths_are_recognised(path: str) -> None:
    hex_ = "0123456789abcdef" * 4
    assert blob_digest(path.format(hex=hex_)) == f"sha256:{hex_}"


@pytest.mark.parametrize("path", ["./model.gguf", "/blobs/sha256-abc", "/x/sha256-" + "a" * 64])
def test_other_paths_are_not_blob_paths(path: str) -> None:
    assert blob_digest(path) is None


def test_an_ollama_blob_path_builds_from_the_local_store(
    cli: CLI, tmp_path: Path, tiny_gguf: Path
) -> None:
    digest = _digest(tiny_gguf)
    blob_path = f"/root/.ollama/models/blobs/sha256-{digest[7:]}"
    shown = _write(tmp_path / "shown", f"FROM {blob_path}\nPARAMETER temperature 0.3\n")

    # Nothing in the store yet: lint warns, and the build says where it looked.
    linted = cli("lint", "-f", shown)
    assert linted.returncode == 0
    assert f"warning: FROM {blob_path}: no such file or in the local store" in linted.stderr
    failed = cli("build", "-f", shown, "-t", "copy:1")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert f"FROM {blob_path}: no such file, and blob {digest} is not in the local store" in (
        failed.stderr
    )

    # Once the blob is in the store (any image built from the same GGUF), both use it.
    origin = tmp_path / "origin"
    _write(origin, "FROM ./tiny.gguf\n")
    shutil.copy(tiny_gguf, origin / "tiny.gguf")
    assert cli("build", "-t", "tiny:1", cwd=origin).returncode == 0
    strict = cli("lint", "-f", shown, "--strict")
    assert (strict.returncode, strict.stderr) == (0, ""), strict.stderr
    built = cli("build", "-f", shown, "-t", "copy:1", "--json")
    assert built.returncode == 0, built.stderr
    events = [json.loads(line) for line in built.stdout.splitlines()]
    assert any(e.get("status") == f"using existing layer {digest}" for e in events)
    inspected = json.loads(cli("inspect", "copy:1").stdout)
    layers = [layer["digest"] for layer in inspected["manifest"]["layers"]]
    assert digest in layers
    assert cli("show", "copy:1", "--parameters").stdout.split() == ["temperature", "0.3"]

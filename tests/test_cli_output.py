"""What the CLI prints for a newcomer or a CI log: help without type noise, one progress line per
blob with its size, and a line for every registry retry."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, FIXTURES_DIR

if str(FIXTURES_DIR) not in sys.path:
    sys.path.insert(0, str(FIXTURES_DIR))
from procutil import free_port

COMMANDS = ["build", "lint", "list", "show", "inspect", "tag", "rm", "prune", "push", "pull",
            "login", "logout", "save", "load", "serve", "ps", "stop", "run"]  # fmt: skip


@pytest.fixture
def project(tmp_path: Path, tiny_gguf: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(tiny_gguf, folder / "tiny.gguf")
    (folder / "Modelfile").write_text('FROM ./tiny.gguf\nSYSTEM "Be brief."\n')
    return folder


# -- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_python_types_on_options(cli: CLI, command: str) -> None:
    out = cli(command, "--help")
    assert out.returncode == 0, out.stderr
    options = out.stdout.split("Options:", 1)[1]
    assert not re.search(r"<(bool|str|int|path|list\[)", options), options


def test_build_help_names_values_and_keeps_q_for_quiet(cli: CLI) -> None:
    text = cli("build", "--help").stdout
    assert re.search(r"^  -t, --tag REF\s", text, flags=re.MULTILINE)
    assert re.search(r"^  -q, --quiet\s", text, flags=re.MULTILINE)
    assert re.search(r"^  --quantize TYPE\s", text, flags=re.MULTILINE)
    assert re.search(r"^  --label KEY=VALUE\s", text, flags=re.MULTILINE)
    assert re.search(r"^  --json\s+Print", text, flags=re.MULTILINE)  # a flag takes no value


def test_build_q_is_quiet(cli: CLI, project: Path) -> None:
    out = cli("build", "-t", "tiny:1", "-q", cwd=project)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out.stdout)


# -- progress when stderr is not a terminal ---------------------------------------------------


def test_build_progress_is_one_line_per_blob_with_its_size(cli: CLI, project: Path) -> None:
    out = cli("build", "-t", "tiny:1", cwd=project)  # output captured: not a terminal
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == len(set(lines)), lines
    assert "copying tiny.gguf (571 KB)" in lines
    layers = [line for line in lines if line.startswith("creating new layer sha256:")]
    assert len(layers) == 2  # the weights and the system message
    assert all(re.search(r" \(\d+(\.\d)? (B|KB|MB)\)$", line) for line in layers), layers


def test_push_and_pull_progress_is_one_line_per_blob_with_its_size(
    cli: CLI, project: Path, registry: Any
) -> None:
    ref = f"{registry.host}/ci/tiny:1"
    cli("build", "-t", ref, "-q", cwd=project, check=True)
    pushed = cli("push", ref)
    assert pushed.returncode == 0, pushed.stderr
    blobs = [line for line in pushed.stderr.splitlines() if re.match(r"pushing [0-9a-f]{12}", line)]
    # the weights, the system message and the config: once each, with a size
    assert len(blobs) == len(set(blobs)) == 3, pushed.stderr
    assert all(re.fullmatch(r"pushing [0-9a-f]{12} \(\d+(\.\d)? (B|KB|MB)\)", b) for b in blobs)
    cli("rm", ref, check=True)
    pulled = cli("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    blobs = [line for line in pulled.stderr.splitlines() if re.match(r"pulling [0-9a-f]{12}", line)]
    assert len(blobs) == len(set(blobs)) == 3, pulled.stderr
    assert any(line.endswith(" (571 KB)") for line in blobs)


# -- retries ----------------------------------------------------------------------------------


def test_push_to_a_port_where_nothing_listens_says_it_is_retrying(cli: CLI, project: Path) -> None:
    cli("build", "-t", "tiny:1", "-q", cwd=project, check=True)
    host = f"127.0.0.1:{free_port()}"
    env = {"OCILLM_REGISTRY_RETRIES": "3", "OCILLM_REGISTRY_BACKOFF": "0.01"}
    out = cli("push", "tiny:1", f"{host}/ci/tiny:1", env=env)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    retries = [line for line in lines if line.startswith("retrying")]
    assert [re.sub(r"in \d+\.\d+s", "in Ns", line) for line in retries] == [
        f"retrying in Ns (attempt {n}/3): {host}: cannot connect (ConnectionError: Connection refused)"
        for n in (2, 3)
    ]
    assert lines[-1].startswith(f"Error: {host}:") and "Connection refused" in lines[-1]

"""The `ocillm` command as a person or a CI job runs it (subprocesses, real store)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import CLI

MODELFILE = 'FROM ./tiny.gguf\nSYSTEM "Be brief."\nPARAMETER temperature 0.2\nLICENSE MIT\n'


def _project(tmp_path: Path, gguf: Path, text: str = MODELFILE) -> Path:
    project = tmp_path / "proj"
    project.mkdir()
    shutil.copy(gguf, project / "tiny.gguf")
    (project / "Modelfile").write_text(text)
    return project


def test_build_list_show_inspect(cli: CLI, tmp_path: Path, tiny_gguf: Path) -> None:
    project = _project(tmp_path, tiny_gguf)
    built = cli("build", "-t", "tiny:1", "-t", "localhost:5000/acme/tiny:1", cwd=project)
    assert built.returncode == 0, built.stderr
    assert "Tagged tiny:1" in built.stdout and "Tagged localhost:5000/acme/tiny:1" in built.stdout
    listed = cli("list")
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert any(line.startswith("tiny:1 ") for line in lines[1:])
    assert "572 KB" in listed.stdout
    tags = json.loads(cli("list", "--json").stdout)
    names = {m["name"] for m in tags["models"]}
    assert names == {"tiny:1", "localhost:5000/acme/tiny:1"}
    shown = cli("show", "tiny:1")
    assert "architecture        llama" in shown.stdout
    assert "temperature    0.2" in shown.stdout and "Be brief." in shown.stdout
    assert cli("show", "tiny:1", "--system").stdout.strip() == "Be brief."
    assert cli("show", "tiny:1", "--license").stdout.strip() == "MIT"
    assert cli("show", "tiny:1", "--parameters").stdout.split() == ["temperature", "0.2"]
    inspected = json.loads(cli("inspect", "tiny:1").stdout)
    assert inspected["format"] == "modelpack"
    assert inspected["manifest"]["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"


def test_quiet_prints_only_the_digest_and_json_prints_events(
    cli: CLI, tmp_path: Path, tiny_gguf: Path
) -> None:
    project = _project(tmp_path, tiny_gguf)
    quiet = cli("build", "-t", "tiny:1", "--quiet", cwd=project)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.strip().startswith("sha256:") and len(quiet.stdout.split()) == 1
    events = [
        json.loads(line)
        for line in cli("build", "-t", "tiny:1", "--json", cwd=project).stdout.splitlines()
    ]
    assert events[0] == {"status": "parsing modelfile"}
    assert any(e["status"].startswith("using existing layer sha256:") for e in events)
    assert events[-1]["status"] == "built" and events[-1]["digest"] == quiet.stdout.strip()


def test_tag_rm_prune(cli: CLI, tmp_path: Path, tiny_gguf: Path, ocillm_home: Path) -> None:
    project = _project(tmp_path, tiny_gguf)
    cli("build", "-t", "tiny:1", cwd=project, check=True)
    assert cli("tag", "tiny:1", "copy:2").stdout.strip() == "copied 'tiny:1' to 'copy:2'"
    assert cli("cp", "tiny:1", "copy:3").returncode == 0
    assert cli("rm", "tiny:1", "copy:2").stdout.splitlines() == [
        "deleted 'tiny:1'",
        "deleted 'copy:2'",
    ]
    blobs = ocillm_home / "models" / "blobs" / "sha256"
    assert (
        len(list(blobs.iterdir())) == 6
    )  # still used by copy:3: model, system, params, license, config, manifest
    removed = cli("rm", "copy:3", "ghost:1")
    assert removed.returncode == 1 and "model 'ghost:1' not found" in removed.stderr
    assert list(blobs.iterdir()) == []
    (blobs / ("a" * 64)).write_bytes(b"orphan")
    assert cli("prune").stdout.strip() == "deleted 1 unreferenced blobs, freed 6 B"


def test_lint_reports_every_error_with_positions(cli: CLI, tmp_path: Path, tiny_gguf: Path) -> None:
    project = _project(tmp_path, tiny_gguf)
    assert cli("lint", cwd=project).returncode == 0
    bad = project / "Bad.Modelfile"
    bad.write_text("FROM ./missing.gguf\nPARAMETER temperature hot\nPARAMETER Temperature 1\n")
    result = cli("lint", "-f", bad)
    assert result.returncode == 1
    assert f"{bad}:1:" in result.stderr and "no such file" in result.stderr
    assert f"{bad}:2:" in result.stderr and "invalid float value" in result.stderr
    assert f"{bad}:3:" in result.stderr and "unknown parameter 'Temperature'" in result.stderr
    as_json = json.loads(cli("lint", "-f", bad, "--json").stdout)
    assert [e["line"] for e in as_json] == [1, 2, 3]


def test_errors_are_one_line_without_traceback(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text("FROM ./x.gguf\nBOGUS thing\n")
    result = cli("build", "-t", "x:1", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error = next(line for line in result.stderr.splitlines() if line.startswith("Error:"))
    assert error.startswith(f"Error: {tmp_path / 'Modelfile'}:2:1: command must be one of")
    assert result.stderr.endswith("    BOGUS thing\n    ^\n")
    missing = cli("show", "nothing:here")
    assert (
        missing.returncode == 1
        and missing.stderr.strip() == "Error: model 'nothing:here' not found"
    )
    bad_ref = cli("show", "Bad/Name")
    assert bad_ref.returncode == 1 and "must be lowercase" in bad_ref.stderr


def test_usage_errors_exit_2(cli: CLI) -> None:
    assert cli("build").returncode == 2
    assert cli("show").returncode == 2
    assert cli("frobnicate").returncode == 2
    assert cli("--version").stdout.startswith("ocillm version ")

"""The skopeo commands the README and docs/formats.md show work on a store ocillm built, and the
one they warn against fails the way they say."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CLI, REPO_ROOT

DOCS = [REPO_ROOT / "README.md", REPO_ROOT / "docs" / "formats.md"]


def _skopeo() -> str:
    found = shutil.which("skopeo")
    if found is None:
        pytest.fail("skopeo is not installed (run the README's test command)", pytrace=False)
    return found


def test_every_documented_skopeo_inspect_of_the_store_uses_raw() -> None:
    shown = [
        line
        for doc in DOCS
        for line in doc.read_text().splitlines()
        if line.startswith("$ skopeo inspect")
    ]
    assert shown, "the docs show skopeo reading the store"
    assert all(" --raw " in line for line in shown), shown


def test_skopeo_reads_a_modelpack_image_in_the_store_only_raw(
    cli: CLI, tmp_path: Path, tiny_gguf: Path, ocillm_home: Path
) -> None:
    shutil.copy(tiny_gguf, tmp_path / "tiny.gguf")
    (tmp_path / "Modelfile").write_text("FROM ./tiny.gguf\n")
    ref = "ghcr.io/acme/support-bot:1.4"
    cli("build", "-t", ref, "-q", cwd=tmp_path, check=True)
    target = f"oci:{ocillm_home / 'models'}:{ref}"

    def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_skopeo(), "inspect", *args, target], capture_output=True, text=True, timeout=60
        )

    raw = skopeo("--raw")
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    config = skopeo("--raw", "--config")
    assert config.returncode == 0 and "modelfs" in json.loads(config.stdout)
    plain = skopeo()
    assert plain.returncode != 0
    assert re.search(r"unsupported image-specific operation on artifact", plain.stderr)

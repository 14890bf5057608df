"""FROM/ADAPTER/DRAFT paths, and the grammar file the parser is built from."""

from __future__ import annotations

import importlib.resources
import pwd
import re
from pathlib import Path

import pytest

from ocillm.errors import ModelfileError
from ocillm.modelfile import looks_like_path, resolve_path
from ocillm.modelfile.parser import _lark


def test_relative_paths_are_relative_to_the_modelfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/")
    base = tmp_path / "project"
    assert resolve_path("./model.gguf", base) == base / "model.gguf"
    assert resolve_path("model.gguf", base) == base / "model.gguf"
    assert resolve_path("../weights/m.gguf", base) == tmp_path / "weights" / "m.gguf"
    assert resolve_path("/abs/m.gguf", base) == Path("/abs/m.gguf")
    assert resolve_path("/abs/./x/../m.gguf", base) == Path("/abs/m.gguf")
    assert resolve_path("with space/m.gguf", base) == base / "with space" / "m.gguf"


def test_home_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_path("~", Path("/elsewhere")) == tmp_path
    assert resolve_path("~/models/m.gguf", Path("/elsewhere")) == tmp_path / "models" / "m.gguf"
    root = pwd.getpwnam("root").pw_dir
    assert resolve_path("~root/m.gguf", Path("/x")) == Path(root) / "m.gguf"
    with pytest.raises(ModelfileError, match="failed to find user 'no_such_user_ocillm'"):
        resolve_path("~no_such_user_ocillm/m.gguf", Path("/x"))


@pytest.mark.parametrize(
    "value",
    [
        "/models/m.gguf",
        "./m",
        "../m",
        "~/m",
        ".",
        "model.gguf",
        "weights/model.Q4_K_M.GGUF",
        "adapter.safetensors",
        "pytorch_model.bin",
        "C:\\models\\m",
        "D:/models/m",
        "\\\\server\\share\\m",
    ],
)
def test_looks_like_a_path(value: str) -> None:
    assert looks_like_path(value)


@pytest.mark.parametrize(
    "value",
    [
        "llama3.2",
        "llama3.2:1b",
        "ghcr.io/acme/bot:1.4",
        "hf.co/org/repo:Q4_K_M",
        "registry:5000/a/b",
    ],
)
def test_references_are_not_paths(value: str) -> None:
    assert not looks_like_path(value)


def test_parser_is_built_from_the_packaged_grammar() -> None:
    grammar = importlib.resources.files("ocillm") / "grammar" / "modelfile.lark"
    source = grammar.read_text(encoding="utf-8")
    declared = set(re.findall(r"^(_?[A-Z][A-Z_]*)(?:\.\d+)?:", source, flags=re.MULTILINE))
    built = {t.name for t in _lark().terminals}
    assert declared == built
    assert {"COMMAND", "PARAMETER", "MESSAGE", "ROLE", "VALUE", "UNCLOSED"} <= built
    rules = {r.origin.name for r in _lark().rules}
    assert {"start", "instruction"} <= {str(r) for r in rules}

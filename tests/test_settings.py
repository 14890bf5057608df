"""Configuration is read once, at the edge, and handed down (README "Configuration").

The CLI and ``serve`` build one :class:`~ocillm.config.Settings` at start; the library below
receives it (or the values it needs) and never reads ``os.environ`` itself.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import BASIC_PASSWORD, BASIC_USERNAME, CLI
from server_fixtures import ServerProcess

import ocillm.config
from ocillm.build import build_image
from ocillm.config import Settings, parse_bool
from ocillm.image import open_image
from ocillm.oci.reference import parse_reference
from ocillm.registry import TransferOptions, pull, push
from ocillm.registry.client import RegistryClient
from ocillm.store import Store

PACKAGE = Path(ocillm.config.__file__).parent
LOCAL = "registry.local:5000"
# Variables ocillm itself reads; third-party libraries may read others (requests: proxies).
OURS = ("OCILLM_", "SOURCE_DATE_EPOCH", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR")


# -- one boolean parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, False),
        ("", False),
        ("  ", False),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("OFF ", False),
        ("1", True),
        ("true", True),
        ("yes", True),
        ("on", True),
    ],
)
def test_one_boolean_reading(raw: str | None, expected: bool) -> None:
    assert parse_bool(raw) is expected
    key = "OCILLM_DEBUG"
    assert Settings.from_env({} if raw is None else {key: raw}).debug is expected


def test_a_blank_boolean_keeps_its_default() -> None:
    assert Settings.from_env({"OCILLM_RUNNER_SPARE": ""}).runner_spare is True
    assert Settings.from_env({"OCILLM_RUNNER_SPARE": "off"}).runner_spare is False


@pytest.mark.parametrize("value", ["off", "0", "false", "no", ""])
def test_debug_off_gives_no_traceback(cli: CLI, value: str) -> None:
    result = cli("show", "nothing:here", env={"OCILLM_DEBUG": value})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "Error: model 'nothing:here' not found"


def test_debug_1_gives_the_traceback(cli: CLI) -> None:
    result = cli("show", "nothing:here", env={"OCILLM_DEBUG": "1"})
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith("Error: model 'nothing:here' not found")


def test_a_malformed_variable_is_one_line_at_start(cli: CLI) -> None:
    result = cli("list", env={"OCILLM_MAX_QUEUE": "many"})
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: OCILLM_MAX_QUEUE='many': expected an integer"


# -- the library never reads the environment -------------------------------------------------


class _Tripwire(dict[str, str]):
    """An ``os.environ`` stand-in that fails the test when one of ocillm's variables is read."""

    def _check(self, key: object) -> None:
        if isinstance(key, str) and key.startswith(OURS):
            raise AssertionError(f"library code read {key} from the environment")

    def __getitem__(self, key: str) -> str:
        self._check(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self._check(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._check(key)
        return super().__contains__(key)


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """From here on, reading an ``OCILLM_*`` variable fails the test; all of them are set to
    values that would change behaviour if anything read them."""
    hostile = {
        "OCILLM_DEFAULT_REGISTRY": "hostile.example",
        "OCILLM_MODELS": "/nonexistent/models",
        "OCILLM_HOME": "/nonexistent/home",
        "OCILLM_REGISTRY_RETRIES": "9",
        "OCILLM_REGISTRY_BACKOFF": "not-a-number",
        "OCILLM_REGISTRY_USERNAME": "nobody",
        "OCILLM_REGISTRY_PASSWORD": "nothing",
        "OCILLM_INSECURE_REGISTRIES": "secure.example",
        "SOURCE_DATE_EPOCH": "garbage",
    }
    env = _Tripwire({**os.environ, **hostile})
    monkeypatch.setattr(os, "environ", env)
    yield


def _settings(tmp_path: Path, **env: str) -> Settings:
    base = {"HOME": str(tmp_path), "OCILLM_HOME": str(tmp_path / "home")}
    return Settings.from_env({**base, **env})


def _project(tmp_path: Path, gguf: Path, text: str = "FROM ./tiny.gguf\n") -> Path:
    project = tmp_path / "proj"
    project.mkdir(exist_ok=True)
    shutil.copy(gguf, project / "tiny.gguf")
    (project / "Modelfile").write_text(text)
    return project / "Modelfile"


def test_reference_parsing_takes_the_default_registry_as_a_parameter(tripwire: None) -> None:
    assert str(parse_reference("tiny")) == "registry.ollama.ai/library/tiny:latest"
    ref = parse_reference("tiny:1", default_registry=LOCAL)
    assert str(ref) == f"{LOCAL}/library/tiny:1"
    assert ref.display(default_registry=LOCAL) == "tiny:1"


def test_store_and_build_follow_the_settings_not_the_environment(
    tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _settings(tmp_path, OCILLM_DEFAULT_REGISTRY=LOCAL, SOURCE_DATE_EPOCH="1700000000")
    modelfile = _project(tmp_path, tiny_gguf)
    monkeypatch.setattr(os, "environ", _Tripwire({**os.environ, "OCILLM_MODELS": "/elsewhere"}))
    store = Store.open(cfg.models, default_registry=cfg.default_registry)
    assert store.root == tmp_path / "home" / "models"
    built = build_image(
        modelfile, [store.parse("tiny:1")], store=store, source_date_epoch=cfg.source_date_epoch
    )
    assert built.content.created == "2023-11-14T22:13:20Z"
    (record,) = store.images()
    assert str(record.reference) == f"{LOCAL}/library/tiny:1"
    assert store.display(record.reference) == "tiny:1"
    # A child image names its base by short name, on the same default registry.
    child = modelfile.parent / "Child"
    child.write_text("FROM tiny:1\nSYSTEM child\n")
    build_image(child, [store.parse("child:1")], store=store)
    assert open_image(store, store.parse("child:1")).system == "child"


def test_registry_client_follows_the_settings_not_the_environment(
    tmp_path: Path, tripwire: None
) -> None:
    cfg = Settings.from_env(
        {
            "HOME": str(tmp_path),
            "OCILLM_REGISTRY_RETRIES": "2",
            "OCILLM_REGISTRY_BACKOFF": "0.01",
            "OCILLM_INSECURE_REGISTRIES": "plain.example:5000",
        }
    )
    options = TransferOptions.from_settings(cfg, concurrency=1)
    assert (options.retries, options.backoff, options.concurrency) == (2, 0.01, 1)
    plain = RegistryClient(parse_reference("plain.example:5000/a/b:1"), options)
    assert plain._schemes() == ["https", "http"]
    secure = RegistryClient(parse_reference("secure.example/a/b:1"), options)
    assert secure._schemes() == ["https"]  # the environment's list is not consulted
    assert options.credentials.find("secure.example") is None
    assert TransferOptions().credentials.find("secure.example") is None


def test_push_and_pull_take_credentials_from_the_settings(
    registry_basic: Any, tmp_path: Path, tiny_gguf: Path, tripwire: None
) -> None:
    cfg = _settings(
        tmp_path,
        OCILLM_REGISTRY_USERNAME=BASIC_USERNAME,
        OCILLM_REGISTRY_PASSWORD=BASIC_PASSWORD,
        OCILLM_REGISTRY_RETRIES="1",
    )
    store = Store.open(cfg.models, default_registry=cfg.default_registry)
    ref = store.parse(f"{registry_basic.host}/team/tiny:1")
    build_image(_project(tmp_path, tiny_gguf), [ref], store=store)
    options = TransferOptions.from_settings(cfg)
    pushed = push(ref, store, options=options)
    other = Store.open(tmp_path / "other")
    assert pull(ref, other, options=options).digest == pushed.digest


# -- where the environment may be read -------------------------------------------------------


def _environment_reads(path: Path) -> list[str]:
    """``os.environ``, ``getenv``/``environ`` and ``settings()`` uses in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            found.append(f"{path.name}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in ("environ", "getenv"):
            found.append(f"{path.name}:{node.lineno}: {node.id}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            names = {a.name for a in node.names} & {"environ", "getenv", "environb"}
            found += [f"{path.name}:{node.lineno}: from os import {n}" for n in sorted(names)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "settings"
        ):
            found.append(f"{path.name}:{node.lineno}: settings()")
    return found


def test_the_vocabulary_layer_reads_no_environment_and_no_settings() -> None:
    for path in sorted((PACKAGE / "oci").glob("*.py")):
        assert _environment_reads(path) == [], path
        tree = ast.parse(path.read_text())
        imports = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert "ocillm.config" not in imports, f"{path} imports the settings"


def test_only_the_edges_read_the_environment() -> None:
    # config.py reads it; cli/app.py reads OCILLM_DEBUG alone when the settings themselves are
    # malformed; runner/process.py hands the parent's environment on to a runner process.
    allowed = {"config.py", "cli/app.py", "runner/process.py"}
    readers = {
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if _environment_reads(path)
    }
    assert readers <= allowed, sorted(readers - allowed)
    assert not hasattr(ocillm.config, "settings"), "settings() re-read the environment per call"


def test_settings_are_built_only_at_the_edges() -> None:
    edges = {"config.py", "cli/common.py", "server/app.py"}
    builders = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "from_env":
                builders.add(str(path.relative_to(PACKAGE)))
    assert builders - {"cli/app.py"} <= edges, sorted(builders - edges)


# -- the edges hand the settings down ----------------------------------------------------------


def test_the_cli_uses_the_default_registry_everywhere(
    cli: CLI, tmp_path: Path, tiny_gguf: Path
) -> None:
    env = {"OCILLM_DEFAULT_REGISTRY": LOCAL}
    modelfile = _project(tmp_path, tiny_gguf)
    built = cli("build", "-t", "tiny:1", "-f", modelfile, env=env)
    assert built.returncode == 0, built.stderr
    assert "Tagged tiny:1" in built.stdout
    assert json.loads(cli("inspect", "tiny:1", env=env).stdout)["reference"] == (
        f"{LOCAL}/library/tiny:1"
    )
    names = [m["name"] for m in json.loads(cli("list", "--json", env=env).stdout)["models"]]
    assert names == ["tiny:1"]
    shown = cli("show", "tiny:1", "--modelfile", env=env).stdout
    assert "FROM tiny:1\n" in shown
    # Without the variable the same store shows the full name, and `tiny:1` is not there.
    assert cli("list").stdout.splitlines()[1].startswith(f"{LOCAL}/library/tiny:1 ")
    assert cli("show", "tiny:1").returncode == 1


def test_serve_uses_the_settings_it_started_with(tmp_path: Path, tiny_gguf: Path) -> None:
    home = tmp_path / "home"
    cfg = Settings.from_env({"OCILLM_HOME": str(home), "OCILLM_DEFAULT_REGISTRY": LOCAL})
    store = Store.open(cfg.models, default_registry=cfg.default_registry)
    build_image(_project(tmp_path, tiny_gguf), [store.parse("tiny:1")], store=store)
    env = {"OCILLM_DEFAULT_REGISTRY": LOCAL, "OCILLM_RUNNER_SPARE": "0"}
    server = ServerProcess(home, env=env).start()
    try:
        tags = httpx.get(f"{server.url}/api/tags", timeout=30).json()
        assert [m["name"] for m in tags["models"]] == ["tiny:1"]
        shown = httpx.post(f"{server.url}/api/show", json={"model": "tiny:1"}, timeout=30)
        assert shown.status_code == 200, shown.text
    finally:
        server.stop()

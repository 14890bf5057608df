"""llama.cpp loaded the same way on every x86-64 CPU: without extra buffer types where the CPU has
AMX (whose kernels crash on quantized models in llama-cpp-python 0.3.36), with them elsewhere;
the choice reaches ``llama_model_params`` in-process and in a runner process; a runner crash is
explained by llama.cpp's last error line and logged once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from ocillm.config import Settings
from ocillm.errors import UsageError
from ocillm.runner import CompletionRequest, RunnerError, RunnerProcess, RunnerSpec
from ocillm.runner.llama_loader import cpu_flags, has_amx, open_llama, use_extra_buffer_types
from ocillm.runner.process import _tail
from ocillm.scheduler.factory import ProcessRunnerFactory

SAPPHIRE_RAPIDS = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\n"
    "flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_bf16 avx512_fp16 amx_tile amx_int8\n\n"
)
EPYC = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse avx2 fma f16c avx512f\n\n"


def test_amx_is_found_in_cpuinfo(tmp_path: Path) -> None:
    intel, amd = tmp_path / "intel", tmp_path / "amd"
    intel.write_text(SAPPHIRE_RAPIDS)
    amd.write_text(EPYC)
    assert has_amx(cpu_flags(intel))
    assert not has_amx(cpu_flags(amd))
    assert "avx2" in cpu_flags(amd)
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_auto_turns_extra_buffer_types_off_only_on_amx() -> None:
    amx = frozenset({"avx512f", "amx_int8", "amx_tile"})
    plain = frozenset({"avx2", "avx512f"})
    assert use_extra_buffer_types("auto", amx) is False
    assert use_extra_buffer_types("auto", plain) is True
    assert use_extra_buffer_types("on", amx) is True
    assert use_extra_buffer_types("off", plain) is False


def test_the_setting_is_read_once_and_checked() -> None:
    assert Settings.from_env({}).llama_repack == "auto"
    assert Settings.from_env({"OCILLM_LLAMA_REPACK": "off"}).llama_repack == "off"
    assert Settings.from_env({"OCILLM_LLAMA_REPACK": "0"}).llama_repack == "off"
    assert Settings.from_env({"OCILLM_LLAMA_REPACK": "ON"}).llama_repack == "on"
    with pytest.raises(UsageError, match="OCILLM_LLAMA_REPACK='sometimes'"):
        Settings.from_env({"OCILLM_LLAMA_REPACK": "sometimes"})


@pytest.mark.parametrize("repack", ["on", "off"])
def test_the_choice_reaches_llama_model_params(
    tiny_gguf_q4: Path, repack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params
    llm = open_llama(tiny_gguf_q4, repack=repack, n_ctx=128, n_threads=2, verbose=True)
    try:
        assert bool(llm.model_params.use_extra_bufts) is (repack == "on")
        if repack == "off" or not has_amx(cpu_flags()):  # forced on, AMX would crash here
            out: Any = llm.create_completion("hello", max_tokens=4, temperature=0.0)
            assert out["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()
    assert lib.llama_model_default_params is original  # the wrapper is gone after the load
    # llama.cpp's own account of the load: repacked weights get a CPU_REPACK buffer (an AMX one
    # on a CPU with AMX, where the AMX buffer type comes first).
    log = capfd.readouterr().err
    assert "llama.cpp info: load_tensors:" in log
    repacked = "CPU_REPACK model buffer" in log or "AMX model buffer" in log
    assert repacked is (repack == "on")


def test_auto_follows_this_cpu(tiny_gguf: Path) -> None:
    llm = open_llama(tiny_gguf, n_ctx=64, n_threads=2, verbose=False)
    try:
        assert bool(llm.model_params.use_extra_bufts) is not has_amx(cpu_flags())
    finally:
        llm.close()


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_a_runner_process_loads_with_the_factory_setting(tiny_gguf: Path) -> None:
    async def main(repack: str) -> bool | None:
        factory = ProcessRunnerFactory(spare=False, repack=repack)
        runner = await factory.start(RunnerSpec(model=tiny_gguf, n_ctx=64), load_timeout=60)
        try:
            assert isinstance(runner, RunnerProcess)
            text = (await runner.complete(CompletionRequest(prompt="hi", num_predict=2))).content
            assert isinstance(text, str)
            return runner.extra_buffer_types
        finally:
            await runner.stop()
            await factory.close()

    assert _run(main("off")) is False
    assert _run(main("on")) is True
    assert _run(main("auto")) is (not has_amx(cpu_flags()))


def test_a_crash_names_llama_cpps_last_error_line_not_its_last_info_line() -> None:
    lines = deque(
        [
            "llama.cpp warn: load: control-looking token 212 was not control-type",
            "llama.cpp error: ggml_backend_cpu_buffer: failed to allocate 99 GiB",
            "llama.cpp warn: llama_kv_cache_iswa: using full-size SWA cache",
        ]
    )
    assert _tail(lines) == ": llama.cpp error: ggml_backend_cpu_buffer: failed to allocate 99 GiB"
    quiet = deque(["llama.cpp warn: llama_kv_cache_iswa: using full-size SWA cache"])
    assert _tail(quiet) == " (no error line in its log)"
    python = deque(["Traceback (most recent call last):", "  File x", "RuntimeError: boom"])
    assert "RuntimeError: boom" in _tail(python)


def test_a_segfaulting_runner_is_an_error_and_one_log_line(
    tiny_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> str:
        proc = await RunnerProcess.start(RunnerSpec(model=tiny_gguf, n_ctx=64))
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGSEGV)
        with pytest.raises(RunnerError) as info:
            await proc.complete(CompletionRequest(prompt="hello", num_predict=4))
        await asyncio.sleep(0.3)  # the exit watcher logs
        await proc.stop()
        return str(info.value)

    with caplog.at_level(logging.ERROR, logger="ocillm.runner.process"):
        message = _run(main())
    assert "killed by SIGSEGV" in message
    assert "SWA cache" not in message  # an informational line never explains a crash
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crashes) == 1
    assert "killed by SIGSEGV" in crashes[0].getMessage()
    assert tiny_gguf.name in crashes[0].getMessage()

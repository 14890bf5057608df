"""The one place a ``llama_cpp.Llama`` is built: extra buffer types chosen for this CPU, and
llama.cpp's log tagged with its level.

Extra buffer types are llama.cpp's repacked weight layouts (``CPU_REPACK`` on AVX2/AVX-512, the
AMX tiles on Sapphire Rapids-class CPUs). The repacked Q4 kernels are the fast ones, so they stay
on, except on a CPU that advertises AMX: there llama-cpp-python 0.3.36's AMX path
(``ggml_backend_amx_mul_mat``) crashes on the first decode of any quantized model, and a build
flag cannot remove it from a native build. Loading with ``use_extra_bufts = false`` (what
``llama-server --no-repack`` does) avoids it. ``llama_cpp.Llama`` swallows unknown keyword
arguments, so the parameter has to reach ``llama_model_params`` another way: see
:func:`open_llama`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

Repack = Literal["auto", "on", "off"]
REPACK_CHOICES: tuple[Repack, ...] = ("auto", "on", "off")

CPUINFO = Path("/proc/cpuinfo")
LOG_PREFIX = "llama.cpp "  # runner stderr lines from llama.cpp: "llama.cpp error: …"

# ggml_log_level as ggml.h numbers it today (llama-cpp-python's own table predates the change).
_LEVELS = {0: "none", 1: "debug", 2: "info", 3: "warn", 4: "error"}
_CONT = 5
_params_lock = threading.Lock()


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (empty where there is no cpuinfo)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def has_amx(flags: frozenset[str]) -> bool:
    return any(f.startswith("amx_") for f in flags)


def use_extra_buffer_types(repack: Repack, flags: frozenset[str] | None = None) -> bool:
    """Whether to load with extra buffer types: ``auto`` means yes unless the CPU has AMX."""
    if repack != "auto":
        return repack == "on"
    return not has_amx(cpu_flags() if flags is None else flags)


@dataclass(frozen=True)
class ContextOverrides:
    """Context fields ``llama_cpp.Llama`` does not expose (or sets only to on/off).

    ``flash_attn``: -1 auto, 0 off, 1 on (``LLAMA_FLASH_ATTN_TYPE_*``); ``type_k``/``type_v``:
    ``GGML_TYPE_*`` numbers, ``None`` for llama.cpp's default (f16).
    """

    n_seq_max: int = 1
    kv_unified: bool = False
    flash_attn: int = -1
    type_k: int | None = None
    type_v: int | None = None
    # The sliding-window layers' cache holds the window, not the whole context (llama-server's
    # default; llama.cpp's own default is the full size, several times the memory and the work
    # on Gemma 3, whose layers are mostly sliding-window).
    swa_full: bool = False


def open_llama(
    model_path: str | Path,
    *,
    repack: Repack = "auto",
    context: ContextOverrides | None = None,
    **kwargs: Any,
) -> Any:
    """``llama_cpp.Llama(model_path, **kwargs)`` with extra buffer types chosen by ``repack``,
    and ``context`` (when given) applied to the context it creates.

    Raises ``RuntimeError`` if the loaded model's parameters do not carry the choice (a
    llama-cpp-python that builds its parameters differently): a silent no-op here would bring
    the crash back.
    """
    import llama_cpp
    import llama_cpp.llama_cpp as lib

    install_log_tagging(verbose=bool(kwargs.get("verbose", False)))
    extra = use_extra_buffer_types(repack)
    with _default_params(lib, use_extra_bufts=extra, context=context):
        llm = llama_cpp.Llama(model_path=str(model_path), **kwargs)
    if context is not None and lib.llama_n_seq_max(llm._ctx.ctx) != context.n_seq_max:
        llm.close()
        raise RuntimeError(
            f"llama-cpp-python {llama_cpp.__version__} did not take n_seq_max={context.n_seq_max}"
        )
    got = bool(llm.model_params.use_extra_bufts)
    if got != extra:
        llm.close()
        raise RuntimeError(
            f"llama-cpp-python {llama_cpp.__version__} did not take use_extra_bufts={extra}"
        )
    return llm


@contextlib.contextmanager
def _default_params(
    lib: Any, *, use_extra_bufts: bool, context: ContextOverrides | None = None
) -> Iterator[None]:
    # Llama.__init__ starts from lib.llama_model_default_params() and sets only the fields it
    # knows; wrapping that function (under a lock, for the length of one constructor) is the one
    # way to set a field it does not know. Its context parameters are final only when it calls
    # llama_init_from_model (it forces flash attention on or off before), so that call is wrapped.
    original = lib.llama_model_default_params
    original_init = lib.llama_init_from_model

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = use_extra_bufts
        return params

    def init_from_model(model: Any, params: Any) -> Any:
        if context is not None:
            params.n_seq_max = context.n_seq_max
            params.kv_unified = context.kv_unified
            params.flash_attn_type = context.flash_attn
            params.swa_full = context.swa_full
            if context.type_k is not None:
                params.type_k = context.type_k
            if context.type_v is not None:
                params.type_v = context.type_v
        return original_init(model, params)

    with _params_lock:
        lib.llama_model_default_params = defaults
        lib.llama_init_from_model = init_from_model
        try:
            yield
        finally:
            lib.llama_model_default_params = original
            lib.llama_init_from_model = original_init


_log_state: dict[str, Any] = {}


def install_log_tagging(*, verbose: bool) -> None:
    """Route llama.cpp's log to stderr, each line tagged with its level (``llama.cpp error: …``).

    Warnings and errors always; info and debug only when ``verbose``. The lines go to a copy of
    the stderr descriptor taken now, so they survive llama-cpp-python silencing fds 1 and 2 while
    it loads a model — the moment a crash most needs its last error line.
    """
    import llama_cpp

    _log_state["verbose"] = verbose
    # A fresh copy at every load: stderr may have been redirected since the last one.
    out: TextIO
    try:
        out = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, errors="replace")
    except (OSError, ValueError, AttributeError):
        out = sys.stderr
    previous = _log_state.get("out")
    _log_state["out"] = out
    if previous is not None and previous is not sys.stderr:
        previous.close()
    if "callback" in _log_state:
        return
    pending: list[str] = []
    last = ["info"]

    def emit(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        name = last[0] if level == _CONT else _LEVELS.get(level, "info")
        last[0] = name
        pending.append(text.decode("utf-8", errors="replace"))
        joined = "".join(pending)
        if not joined.endswith("\n"):
            return
        pending.clear()
        if name in ("info", "debug", "none") and not _log_state["verbose"]:
            return
        sink: TextIO = _log_state["out"]
        for line in joined.splitlines():
            if line.strip():
                with contextlib.suppress(OSError, ValueError):  # a closed or full sink
                    sink.write(f"{LOG_PREFIX}{name}: {line}\n")

    callback = llama_cpp.llama_log_callback(emit)
    _log_state["callback"] = callback  # referenced for as long as llama.cpp may call it
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def tag_mtmd_logs() -> None:
    """Send the vision library's log (``mtmd``, its CLIP encoder) the way of llama.cpp's own."""
    from llama_cpp import mtmd_cpp

    if "callback" not in _log_state:
        install_log_tagging(verbose=False)
    callback = _log_state["callback"]
    mtmd_cpp.mtmd_log_set(callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(callback, ctypes.c_void_p(0))

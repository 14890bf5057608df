"""``--quantize``: llama.cpp's quantizer over a model blob, the result a new blob.

Results are remembered per (source digest, type), so rebuilding with the same flag is free.
"""

from __future__ import annotations

import json
import os
import threading
import time

from ocillm.errors import BuildError
from ocillm.gguf import read_gguf_info
from ocillm.image import Piece
from ocillm.progress import Event, Reporter
from ocillm.store import Store
from ocillm.store.locks import atomic_write

QUANTIZABLE_SOURCES = ("F32", "F16", "BF16")
TARGETS = (
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L",
    "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "F16", "BF16",
)  # fmt: skip
ALIASES = {"Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M"}


def normalize_target(name: str) -> str:
    upper = name.strip().upper()
    upper = ALIASES.get(upper, upper)
    if upper not in TARGETS:
        raise BuildError(
            f"unsupported quantization type {name!r}: expected one of "
            + ", ".join(t.replace("_K", "_K") for t in TARGETS)
        )
    return upper


def _ftype(target: str) -> int:
    import llama_cpp

    value = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{target}", None)
    if value is None:
        raise BuildError(f"this llama.cpp build cannot quantize to {target}")
    return int(value)


def quantize_blob(store: Store, model: Piece, target_name: str, report: Reporter) -> Piece:
    target = normalize_target(target_name)
    source_path = store.blobs.path(model.digest)
    source_type = read_gguf_info(source_path).file_type
    if source_type.upper() == target:
        return model
    if source_type.upper() not in QUANTIZABLE_SOURCES:
        raise BuildError(
            f"quantization is only supported for F16, BF16 and F32 models (this one is {source_type})"
        )
    memo_path = store.root / "cache" / "quantized.json"
    try:
        memo: dict[str, str] = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    key = f"{model.digest}:{target}"
    known = memo.get(key)
    if known and store.blobs.has(known):
        return Piece(model.role, known, store.blobs.size(known))

    import ctypes

    import llama_cpp

    status = f"quantizing {source_type} model to {target}"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _ftype(target)
    params.nthread = os.cpu_count() or 1
    tmp = store.blobs.temp_path()
    result: list[int] = []

    def run() -> None:
        result.append(
            llama_cpp.llama_model_quantize(
                str(source_path).encode(), str(tmp).encode(), ctypes.byref(params)
            )
        )

    # llama.cpp's quantizer reports no progress of its own: announce it, then wait for it.
    worker = threading.Thread(target=run, name="ocillm-quantize", daemon=True)
    started = time.monotonic()
    report(Event(status))
    worker.start()
    worker.join()
    if not result or result[0] != 0 or not tmp.exists():
        store.blobs.discard(tmp)  # also drops the temp file's claim (a lock held open)
        raise BuildError(f"llama.cpp failed to quantize the model to {target}")
    digest = store.blobs.commit(tmp)
    memo[key] = digest
    memo_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(memo_path, json.dumps(memo).encode())
    report(Event(f"{status}: done in {time.monotonic() - started:.1f} s", digest=digest))
    return Piece(model.role, digest, store.blobs.size(digest))

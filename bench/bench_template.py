"""Benchmark: render a 50-message conversation with a llama3-style template.

Goal (issue 3): median <= 1 ms per render. Parsing is cached (``parse_template`` is an
``lru_cache`` keyed on the template text), so the loop measures rendering only; the first,
uncached parse is reported separately.

    PYTHONPATH=. .venv/bin/python bench/bench_template.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from ocillm.template import parse_template, render_prompt

LLAMA3 = """{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>

{{ .Content }}{{ if not $last }}<|eot_id|>{{ end }}
{{- end }}
{{- end }}"""


def conversation(n: int = 50) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(n - 1):
        role = "user" if i % 2 == 0 else "assistant"
        msgs.append({"role": role, "content": f"Message number {i} from the {role}. " * 3})
    return msgs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    args = ap.parse_args()

    parse_template.cache_clear()
    t0 = time.perf_counter()
    parse_template(LLAMA3)
    first_parse = time.perf_counter() - t0

    msgs = conversation(50)
    out = render_prompt(LLAMA3, messages=msgs)
    assert out.count("<|start_header_id|>") == 51, "unexpected rendering"
    for _ in range(50):  # warm up
        render_prompt(LLAMA3, messages=msgs)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        render_prompt(LLAMA3, messages=msgs)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    p95 = sorted(times)[int(len(times) * 0.95)]
    print(f"first parse (uncached): {first_parse * 1000:.2f} ms")
    print(
        f"render 50 messages, llama3-style: median {median * 1000:.3f} ms, p95 {p95 * 1000:.3f} ms"
    )
    print(f"goal <= 1 ms: {'met' if median <= 0.001 else 'NOT met'}")


if __name__ == "__main__":
    main()

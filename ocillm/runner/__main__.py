"""``python -m ocillm.runner --model PATH ...``: load one model and serve it until terminated.

Prints ``OCILLM_RUNNER_READY port=N`` (or ``socket=PATH``) on stdout once it listens. A load that
fails prints ``error: ...`` on stderr and exits with status 1.

``python -m ocillm.runner --spare`` is a runner started before its model is known: it pays for
the interpreter and the llama.cpp import up front, then reads its arguments as one JSON line
(``{"argv": [...]}``) from stdin. The daemon keeps one, so a cold load costs only the load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import sys
import threading
from pathlib import Path
from types import FrameType

from ocillm.gc_pauses import freeze_startup_objects
from ocillm.runner.engine import FLASH_ATTENTION_CHOICES, KV_CACHE_TYPES, Engine, EngineConfig
from ocillm.runner.llama_loader import REPACK_CHOICES
from ocillm.runner.protocol import READY_PREFIX
from ocillm.runner.server import serve_tcp, serve_unix


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ocillm.runner", description=__doc__)
    p.add_argument("--model", required=True, type=Path)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    where.add_argument("--socket", type=str, default=None, help="unix socket path")
    p.add_argument("--n-ctx", type=int, default=2048, help="context tokens per slot")
    p.add_argument("--n-gpu-layers", type=int, default=0)
    p.add_argument("--n-parallel", type=int, default=1)
    p.add_argument("--n-threads", type=int, default=0, help="0: llama.cpp's choice")
    p.add_argument("--n-batch", type=int, default=512)
    p.add_argument("--no-mmap", action="store_true")
    p.add_argument("--embedding", action="store_true")
    p.add_argument("--lora", type=Path, action="append", default=[])
    p.add_argument("--main-gpu", type=int, default=0)
    p.add_argument("--tensor-split", type=str, default="", help="comma-separated shares")
    p.add_argument("--verbose", action="store_true", help="llama.cpp's own logging on stderr")
    p.add_argument(
        "--repack",
        choices=REPACK_CHOICES,
        default="auto",
        help="llama.cpp's extra buffer types (repacked weights); auto: off on AMX CPUs",
    )
    p.add_argument("--draft", type=Path, default=None, help="draft model (speculative decoding)")
    p.add_argument(
        "--mmproj", type=Path, default=None, help="image encoder (projector) of a vision model"
    )
    p.add_argument("--kv-cache-type", choices=KV_CACHE_TYPES, default="f16")
    p.add_argument("--flash-attention", choices=FLASH_ATTENTION_CHOICES, default="auto")
    p.add_argument(
        "--watch-stdin", action="store_true", help="exit when stdin closes (the parent is gone)"
    )
    return p


def _exit_when_stdin_closes() -> None:
    def watch() -> None:
        try:
            while os.read(0, 4096):  # the raw fd: no buffer lock to trip over at shutdown
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _arguments_from_stdin() -> list[str] | None:
    """A spare's arguments: one JSON line from the daemon, or None when stdin closes first."""
    import llama_cpp  # noqa: F401  (the reason a spare exists: import before the model is known)

    line = sys.stdin.readline()
    if not line.strip():
        return None
    request = json.loads(line)
    return [str(a) for a in request["argv"]]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--spare"]:
        spare_argv = _arguments_from_stdin()
        if spare_argv is None:
            return 0
        argv = spare_argv
    args = _parser().parse_args(argv)
    if args.watch_stdin:
        _exit_when_stdin_closes()
    signal.signal(signal.SIGTERM, _terminate)
    config = EngineConfig(
        model=args.model,
        n_ctx=args.n_ctx,
        n_gpu_layers=args.n_gpu_layers,
        n_parallel=args.n_parallel,
        n_threads=args.n_threads or None,
        n_batch=args.n_batch,
        use_mmap=not args.no_mmap,
        embedding=args.embedding,
        loras=tuple(args.lora),
        main_gpu=args.main_gpu,
        tensor_split=tuple(float(x) for x in args.tensor_split.split(",") if x.strip()),
        verbose=args.verbose,
        repack=args.repack,
        kv_cache_type=args.kv_cache_type,
        draft=args.draft,
        projector=args.mmproj,
        flash_attention=args.flash_attention,
    )
    try:
        engine = Engine(config)
    except Exception as err:
        print(f"error: loading {args.model}: {err}", file=sys.stderr, flush=True)
        return 1
    freeze_startup_objects()  # the loaded model lives as long as this process
    server: socketserver.BaseServer
    if args.socket:
        server = serve_unix(engine, args.socket)
        where = f"socket={args.socket}"
    else:
        tcp = serve_tcp(engine, args.port)
        server, where = tcp, f"port={tcp.server_address[1]}"
    repack = "on" if engine.extra_buffer_types else "off"
    print(f"{READY_PREFIX} {where} pid={os.getpid()} repack={repack}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
        if args.socket and os.path.exists(args.socket):
            os.unlink(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())

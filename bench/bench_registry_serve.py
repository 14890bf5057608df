"""The daemon as a registry: a 1 GiB pull from `ocillm serve`'s /v2/ vs from Distribution, and a
cold vs warm pull through the daemon as a pull-through cache of that Distribution.

One run, same machine, all loopback. Each pull is ocillm's own library pull into a fresh store
(streamed, sha256-verified, fsynced), so the two sources are compared with the same client.

    .venv/bin/python bench/bench_registry_serve.py [--size-mib 1024] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "registry-fixtures"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from bench_build import make_gguf  # noqa: E402
from daemon import Daemon  # noqa: E402
from registry import RegistryProcess  # noqa: E402

from ocillm.build.builder import build_image  # noqa: E402
from ocillm.oci.reference import parse_reference  # noqa: E402
from ocillm.registry import pull, push  # noqa: E402
from ocillm.store import Store  # noqa: E402


def timed_pull(ref: str, root: Path) -> float:
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    pull(parse_reference(ref), Store.open(root))
    seconds = time.perf_counter() - start
    shutil.rmtree(root, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ocillm-bench-regserve-"))
    work.mkdir(parents=True, exist_ok=True)
    gguf = work / "model.gguf"
    make_gguf(gguf, args.size_mib)
    home = work / "daemon"
    (work / "Modelfile").write_text(f"FROM {gguf}\n")
    store = Store.open(home / "models")
    build_image(work / "Modelfile", [parse_reference("team/big:1")], store=store)
    distribution = RegistryProcess(work / "registry")
    distribution.start()
    daemon = cache = None
    try:
        push(parse_reference("team/big:1"), store,
             target=parse_reference(f"{distribution.host}/team/big:1"))  # fmt: skip
        daemon = Daemon(home)
        (work / "cache").mkdir(exist_ok=True)
        cache = Daemon(work / "cache", OCILLM_MIRROR_OF=distribution.host)
        host_daemon = daemon.url.removeprefix("http://")
        host_cache = cache.url.removeprefix("http://")
        dist = timed_pull(f"{distribution.host}/team/big:1", work / "p1")
        served = timed_pull(f"{host_daemon}/team/big:1", work / "p2")
        cold = timed_pull(f"{host_cache}/team/big:1", work / "p3")
        warm = timed_pull(f"{host_cache}/team/big:1", work / "p4")
    finally:
        for d in (daemon, cache):
            if d is not None:
                d.stop()
        distribution.stop()
    print(f"size: {args.size_mib} MiB")
    print(f"pull from Distribution:      {dist:6.2f} s")
    print(f"pull from ocillm serve /v2/: {served:6.2f} s  ({served / dist:.2f}x Distribution)")
    print(f"pull-through cold:           {cold:6.2f} s")
    print(f"pull-through warm:           {warm:6.2f} s  ({warm / cold:.2f}x cold)")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Build a 1 GiB GGUF and compare with hashing it with hashlib, side by side in one run.

Prints: hashlib time, a durable copy (copy_file_range + fsync, the disk's limit), build time (library call and CLI), their ratio (goal <= 1.3x), the rebuild
time of unchanged inputs (goal <= 0.1 s) and the CLI's peak RSS (goal <= 100 MB).

    .venv/bin/python bench/bench_build.py [--size-mib 1024] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_gguf(path: Path, size_mib: int) -> None:
    """A valid GGUF of about ``size_mib`` MiB, written tensor by tensor (flat memory)."""
    import gguf

    tensor_mib = 64
    count = max(1, size_mib // tensor_mib)
    n = tensor_mib * (1 << 20) // 4
    rng = np.random.default_rng(0)
    block = rng.standard_normal(1 << 20, dtype=np.float32)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("bench")
    writer.add_context_length(2048)
    writer.add_embedding_length(4096)
    writer.add_block_count(count)
    writer.add_file_type(0)
    for i in range(count):
        writer.add_tensor_info(f"blk.{i}.ffn_up.weight", (n,), np.dtype(np.float32), n * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _ in range(count):
        data = np.tile(block, n // block.size)
        writer.write_tensor_data(data)
        del data
    writer.close()


def hashlib_time(path: Path) -> float:
    start = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    h.hexdigest()
    return time.perf_counter() - start


# A small launcher runs the CLI and reports its child's peak RSS: measured from this (large)
# process, a forked child's high-water mark would include this process's pages.
LAUNCHER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def durable_copy_time(path: Path, dst: Path) -> float:
    """The disk's own limit for putting the bytes in the store: a kernel copy plus fsync."""
    dst.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(path, "rb") as src, open(dst, "wb") as out:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            offset += os.copy_file_range(src.fileno(), out.fileno(), size - offset)
        os.fsync(out.fileno())
    elapsed = time.perf_counter() - start
    dst.unlink()
    return elapsed


def cli_build(modelfile: Path, env: dict[str, str]) -> tuple[float, int]:
    cmd = [
        sys.executable,
        "-m",
        "ocillm",
        "build",
        "-f",
        str(modelfile),
        "-t",
        "bench:1",
        "--quiet",
    ]
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *cmd], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), int(out[1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ocillm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    gguf_path = work / "big.gguf"
    if not gguf_path.exists() or gguf_path.stat().st_size < args.size_mib << 20:
        print(f"writing {args.size_mib} MiB GGUF to {gguf_path} ...", flush=True)
        make_gguf(gguf_path, args.size_mib)
    size = gguf_path.stat().st_size
    modelfile = work / "Modelfile"
    modelfile.write_text("FROM ./big.gguf\nPARAMETER temperature 0.5\n")

    from ocillm.build import build_image
    from ocillm.oci.reference import parse_reference
    from ocillm.store import Store

    hashlib_time(gguf_path)  # warm the page cache so both sides read from memory
    hashes, copies, builds, clis, rebuilds = [], [], [], [], []
    peak = 0
    for i in range(args.repeat):
        hashes.append(hashlib_time(gguf_path))
        copies.append(durable_copy_time(gguf_path, work / "copy.tmp"))
        store_dir = work / f"store-{i}"
        store = Store(store_dir)
        start = time.perf_counter()
        build_image(modelfile, [parse_reference("bench:1")], store=store)
        builds.append(time.perf_counter() - start)
        start = time.perf_counter()
        build_image(modelfile, [parse_reference("bench:1")], store=store)
        rebuilds.append(time.perf_counter() - start)
        env = dict(os.environ, OCILLM_MODELS=str(work / f"cli-store-{i}"), PYTHONPATH=str(REPO))
        wall, rss = cli_build(modelfile, env)
        clis.append(wall)
        peak = max(peak, rss)
        subprocess.run(["rm", "-rf", str(store_dir), str(work / f"cli-store-{i}")], check=True)
    h, d, b, c, r = (statistics.median(x) for x in (hashes, copies, builds, clis, rebuilds))
    gib = size / (1 << 30)
    print(f"input                 {size / (1 << 20):.0f} MiB GGUF")
    print(f"hashlib.sha256        {h:.3f} s  ({gib / h:.2f} GiB/s)")
    print(f"copy + fsync          {d:.3f} s  (the disk's limit for a durable copy)")
    print(f"build (library)       {b:.3f} s  ratio {b / h:.2f}x vs hashlib (goal <= 1.3x)")
    print(
        f"                                 ratio {b / max(h, d):.2f}x vs max(hashlib, copy+fsync)"
    )
    print(f"build (CLI, process)  {c:.3f} s  ratio {c / h:.2f}x  (includes interpreter start)")
    print(f"rebuild unchanged     {r * 1000:.1f} ms  (goal <= 100 ms)")
    print(f"peak RSS (CLI)        {peak / 1e6:.0f} MB  (goal <= 100 MB)")


if __name__ == "__main__":
    main()

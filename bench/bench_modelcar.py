"""The cost of the second form: ``build --modelcar`` beside a plain build of the same 1 GiB GGUF.

The anchor is the plain build (the ModelPack artifact alone) in the same run. Measured:

- the modelcar step alone (``write_modelcar`` on the plain build's store: the tar layers,
  configs, per-platform manifests and the index), its seconds and the bytes it adds to the store
  (file sizes, and disk blocks, which differ on a reflink filesystem);
- ``ocillm build --modelcar`` against ``ocillm build`` as processes, wall time and peak RSS;
- a rebuild with ``--modelcar`` of the unchanged inputs (the layer cache: no tar is written).

    .venv/bin/python bench/bench_modelcar.py [--size-mib 1024] [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_build import LAUNCHER, make_gguf  # noqa: E402


def store_bytes(root: Path) -> tuple[int, int]:
    """(sum of blob sizes, disk blocks they take) under ``root/blobs``."""
    size = blocks = 0
    for path in (root / "blobs").rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            size += st.st_size
            blocks += st.st_blocks * 512
    return size, blocks


def cli(modelfile: Path, store: Path, *extra: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of ``ocillm build`` in its own process."""
    env = dict(os.environ, OCILLM_MODELS=str(store), PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "ocillm", "build", "-f", str(modelfile), "-t", "bench:1"]
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *cmd, "--quiet", *extra],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), int(out[1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ocillm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    gguf_path = work / "big.gguf"
    if not gguf_path.exists() or gguf_path.stat().st_size < args.size_mib << 20:
        print(f"writing {args.size_mib} MiB GGUF to {gguf_path} ...", flush=True)
        make_gguf(gguf_path, args.size_mib)
    modelfile = work / "Modelfile"
    modelfile.write_text("FROM ./big.gguf\nSYSTEM terse\nPARAMETER temperature 0.5\n")

    from ocillm.build import build_image
    from ocillm.image.modelcar import write_modelcar
    from ocillm.oci.reference import parse_reference
    from ocillm.store import Store

    refs = [parse_reference("bench:1")]
    rows: dict[str, list[float]] = {
        k: [] for k in ("plain", "car", "cli_plain", "cli_both", "cli_rebuild")
    }
    plain_bytes = car_bytes = car_blocks = plain_blocks = 0
    rss_plain = rss_both = 0
    for i in range(args.repeat):
        store_dir = work / f"store-{i}"
        stale = [store_dir, *work.glob(f"cli-{i}-*")]  # from an interrupted run
        subprocess.run(["rm", "-rf", *map(str, stale)], check=True)
        store = Store(store_dir)
        start = time.perf_counter()
        result = build_image(modelfile, refs, store=store)
        rows["plain"].append(time.perf_counter() - start)
        plain_bytes, plain_blocks = store_bytes(store_dir)
        start = time.perf_counter()
        write_modelcar(store, result.descriptor, refs)
        rows["car"].append(time.perf_counter() - start)
        total, blocks = store_bytes(store_dir)
        car_bytes, car_blocks = total - plain_bytes, blocks - plain_blocks
        for key, extra, rss_key in (
            ("cli_plain", (), "plain"),
            ("cli_both", ("--modelcar",), "both"),
            ("cli_rebuild", ("--modelcar",), ""),
        ):
            target = work / (f"cli-{i}-plain" if key == "cli_plain" else f"cli-{i}-both")
            wall, rss = cli(modelfile, target, *extra)
            rows[key].append(wall)
            if rss_key == "plain":
                rss_plain = max(rss_plain, rss)
            elif rss_key == "both":
                rss_both = max(rss_both, rss)
        subprocess.run(
            ["rm", "-rf", str(store_dir), *map(str, work.glob(f"cli-{i}-*"))], check=True
        )
    m = {k: statistics.median(v) for k, v in rows.items()}
    mib = 1 << 20
    print(
        f"input                   {gguf_path.stat().st_size / mib:.0f} MiB GGUF, {args.repeat} runs (medians)"
    )
    print(
        f"plain build (library)   {m['plain']:.3f} s, {plain_bytes / mib:.1f} MiB in the store  (the anchor)"
    )
    print(
        f"modelcar step (library) {m['car']:.3f} s, +{car_bytes / mib:.1f} MiB "
        f"(+{car_blocks / mib:.1f} MiB of disk blocks)  "
        f"ratio {m['car'] / m['plain']:.2f}x time, {car_bytes / plain_bytes:.3f}x bytes"
    )
    print(
        f"CLI build / --modelcar  {m['cli_plain']:.3f} s / {m['cli_both']:.3f} s  "
        f"ratio {m['cli_both'] / m['cli_plain']:.2f}x; peak RSS {rss_plain / 1e6:.0f} / {rss_both / 1e6:.0f} MB"
    )
    print(f"rebuild --modelcar      {m['cli_rebuild']:.3f} s (unchanged inputs: no tar written)")


if __name__ == "__main__":
    main()

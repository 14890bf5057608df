"""Sign and verify a 1 GiB model image on a local Distribution, beside hashlib of its blob.

What is signed is the manifest digest (cosign's simple signing), so neither ``sign`` nor
``verify`` may read the image's blobs. The run proves it two ways: the times, against
``hashlib.sha256`` of the 1 GiB blob in the same run, and the bytes each in-process call read
(``rchar`` of ``/proc/self/io``: files and sockets together).

    .venv/bin/python bench/bench_sign.py [--size-mib 1024] [--runs 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "registry-fixtures"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from bench_build import make_gguf  # noqa: E402
from registry import RegistryProcess  # noqa: E402

MiB = 1 << 20


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def measured(fn: Callable[[], object], runs: int) -> tuple[float, int]:
    """(fastest seconds, bytes read by that run)."""
    best = (float("inf"), 0)
    for _ in range(runs):
        before, start = rchar(), time.perf_counter()
        fn()
        seconds, read = time.perf_counter() - start, rchar() - before
        best = min(best, (seconds, read))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ocillm-bench-sign-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OCILLM_HOME=str(work / "home"), OCILLM_MODELS=str(work / "home/models"))
    env["PYTHONPATH"] = str(REPO)
    os.environ.update(OCILLM_HOME=env["OCILLM_HOME"], OCILLM_MODELS=env["OCILLM_MODELS"])
    reg = RegistryProcess(work / "registry")
    try:
        reg.start()
        gguf = work / "model.gguf"
        print(f"writing a {args.size_mib} MiB GGUF ...", flush=True)
        make_gguf(gguf, args.size_mib)
        (work / "Modelfile").write_text(f"FROM {gguf}\n")
        ref_text = f"{reg.host}/bench/signed:1"
        python = sys.executable
        for argv in (
            ["build", "-f", str(work / "Modelfile"), "-t", ref_text, "-q"],
            ["push", ref_text, "-q"],
            ["key", "generate", "-o", str(work / "cosign")],
        ):
            subprocess.run(
                [python, "-m", "ocillm", *argv], env=env, check=True, capture_output=True
            )

        from ocillm.config import Settings
        from ocillm.registry import TransferOptions
        from ocillm.registry.client import RegistryClient
        from ocillm.store import Store
        from ocillm.trust.keys import load_private
        from ocillm.trust.publish import sign_image
        from ocillm.trust.subject import remote_subject
        from ocillm.trust.verify import decide, load_keys, local_candidates, remote_candidates

        cfg = Settings.from_env()
        store = Store.open(cfg.models)
        ref = store.parse(ref_text)
        options = TransferOptions.from_settings(cfg)
        key = load_private(work / "cosign.key", None)
        keys = load_keys([work / "cosign.pub"])
        manifest = store.manifest(store.resolve(ref))
        model = max(manifest.layers, key=lambda layer: layer.size)
        blob = store.blobs.path(model.digest)

        def hash_blob() -> None:
            h = hashlib.sha256()
            with open(blob, "rb") as f:
                while chunk := f.read(4 * MiB):
                    h.update(chunk)

        def verify_remote() -> None:
            client = RegistryClient(ref, options, actions="pull")
            client.authorize()
            digest = remote_subject(client, ref).digest
            decide(str(ref), digest, remote_candidates(client, digest), keys)

        def verify_local() -> None:
            digest = store.resolve(ref).digest
            decide(str(ref), digest, local_candidates(store, digest), keys)

        hashed, hashed_read = measured(hash_blob, 2)
        signed, signed_read = measured(
            lambda: sign_image(ref, store, key, options=options), args.runs
        )
        remote, remote_read = measured(verify_remote, args.runs)
        local, local_read = measured(verify_local, args.runs)

        def cli(*argv: str) -> float:
            start = time.perf_counter()
            subprocess.run(
                [python, "-m", "ocillm", *argv], env=env, check=True, capture_output=True
            )
            return time.perf_counter() - start

        cli_sign = min(cli("sign", ref_text, "--key", str(work / "cosign.key")) for _ in range(3))
        cli_verify = min(
            cli("verify", ref_text, "--key", str(work / "cosign.pub")) for _ in range(3)
        )

        print(f"model layer {model.size} bytes ({model.size / (1 << 30):.2f} GiB)")
        print(f"hashlib.sha256 of the blob   {hashed:8.3f} s   read {hashed_read / MiB:9.1f} MiB")
        print(
            f"sign (library, push)         {signed * 1000:8.1f} ms  read {signed_read / 1024:9.1f} KiB"
        )
        print(
            f"verify (library, registry)   {remote * 1000:8.1f} ms  read {remote_read / 1024:9.1f} KiB"
        )
        print(
            f"verify --local (library)     {local * 1000:8.1f} ms  read {local_read / 1024:9.1f} KiB"
        )
        print(f"ocillm sign (CLI, wall)      {cli_sign:8.3f} s")
        print(f"ocillm verify (CLI, wall)    {cli_verify:8.3f} s")
        print(f"sign / hashlib = {signed / hashed:.4f}; verify / hashlib = {remote / hashed:.4f}")
        rehashed = max(signed_read, remote_read, local_read) >= model.size
        print("blobs re-read: " + ("YES (a regression)" if rehashed else "no"))
    finally:
        reg.stop()


if __name__ == "__main__":
    main()

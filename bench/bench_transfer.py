"""Push and pull a 1 GiB model image to a local Distribution, side by side with skopeo and curl.

One run, three fresh registries (one per tool, so no tool benefits from another's uploads or
from skopeo's blob-location cache), all on loopback:

* ocillm: ``ocillm push`` of an image built from a 1 GiB GGUF, ``ocillm push`` again (unchanged:
  every blob HEAD-skipped), ``ocillm pull`` into an empty store (streamed, sha256-verified);
* skopeo: ``skopeo copy`` of the same image from ocillm's store (an OCI layout) to its registry,
  and back into an empty ``oci:`` directory;
* curl: the model blob alone, ``POST`` + one ``PUT --upload-file`` and one ``GET -o FILE``: the
  registry's own limit.

Prints wall times, peak RSS of each process (``wait4``), the ratios the issue sets goals for
(pull <= 1.2x curl GET and <= 0.5x skopeo; push <= 1.1x curl PUT and <= 0.8x skopeo; re-push
<= 0.3 s; peak RSS <= 150 MB), and whether each is met.

    .venv/bin/python bench/bench_transfer.py [--size-mib 1024] [--runs 1] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "registry-fixtures"))
sys.path.insert(0, str(REPO / "bench"))

from bench_build import make_gguf  # noqa: E402
from registry import RegistryProcess  # noqa: E402

MiB = 1 << 20
REPUSH_IN_PROCESS = """
import sys, time
from ocillm.config import Settings
from ocillm.registry import TransferOptions, push
from ocillm.store import Store
cfg = Settings.from_env()
store = Store.open(cfg.models, default_registry=cfg.default_registry)
ref = store.parse(sys.argv[1])
start = time.perf_counter()
push(ref, store, options=TransferOptions.from_settings(cfg))
open(sys.argv[2], "w").write(str(time.perf_counter() - start))
"""


@dataclass
class Run:
    seconds: float
    rss_mib: float


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Run ``argv``: wall time and its peak RSS (``VmHWM`` of its own address space).

    ``wait4``'s ru_maxrss would count this (large) process's pages copied at fork/vfork, so
    the child's ``/proc/PID/status`` is sampled every 20 ms instead; VmHWM only grows, so the
    last sample is the peak up to the last 20 ms.
    """
    with tempfile.TemporaryFile() as out:
        actions = [
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 2),
        ]
        start = time.perf_counter()
        pid = os.posix_spawnp(argv[0], list(argv), env or dict(os.environ), file_actions=actions)
        peak = 0
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            peak = max(peak, _hwm_kib(pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            out.seek(0)
            sys.exit(f"failed: {' '.join(argv)}\n{out.read().decode(errors='replace')}")
    return Run(seconds, peak / 1024)


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def settle() -> None:
    """Flush dirty pages first, so no step pays for the previous step's writeback."""
    os.sync()
    time.sleep(0.5)


def best(runs: list[Run]) -> Run:
    fastest = min(runs, key=lambda r: r.seconds)
    return Run(fastest.seconds, max(r.rss_mib for r in runs))


def drop_tag_storage(registry: RegistryProcess) -> None:
    """Empty a registry's storage between runs so every push uploads again."""
    registry.stop()
    shutil.rmtree(registry.storage, ignore_errors=True)
    registry.restart()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=1, help="take the fastest of N runs")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="ocillm-bench-transfer-"))
    work.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    env = dict(os.environ)
    env.update(OCILLM_HOME=str(work / "home"), OCILLM_MODELS=str(work / "home/models"))
    env["PYTHONPATH"] = str(REPO)
    regs = {
        name: RegistryProcess(work / f"registry-{name}") for name in ("ocillm", "skopeo", "curl")
    }
    try:
        for reg in regs.values():
            reg.start()
        gguf = work / "model.gguf"
        print(f"writing a {args.size_mib} MiB GGUF ...", flush=True)
        make_gguf(gguf, args.size_mib)
        (work / "Modelfile").write_text(f"FROM {gguf}\nPARAMETER temperature 0.7\n")
        ref = f"{regs['ocillm'].host}/bench/model:1"
        subprocess.run(
            [python, "-m", "ocillm", "build", "-f", str(work / "Modelfile"), "-t", ref, "--quiet"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        store = work / "home/models"
        index = json.loads((store / "index.json").read_text())
        manifest_digest = index["manifests"][0]["digest"]
        manifest = json.loads((store / "blobs/sha256" / manifest_digest[7:]).read_text())
        model = max(manifest["layers"], key=lambda layer: layer["size"])
        blob = store / "blobs/sha256" / model["digest"][7:]
        size_gib = model["size"] / (1 << 30)
        print(f"model layer {model['digest'][:19]}… {model['size']} bytes\n", flush=True)

        results: dict[str, Run] = {}
        pushes, repushes, pulls, transfer_only = [], [], [], []
        inner: list[float] = []
        for _ in range(args.runs):
            drop_tag_storage(regs["ocillm"])
            settle()
            pushes.append(timed([python, "-m", "ocillm", "push", ref, "--quiet"], env))
            repushes.append(timed([python, "-m", "ocillm", "push", ref, "--quiet"], env))
            transfer_only.append(
                timed([python, "-c", REPUSH_IN_PROCESS, ref, str(work / "repush.txt")], env)
            )
            inner.append(float((work / "repush.txt").read_text()))
            pull_env = dict(
                env,
                OCILLM_HOME=str(work / "pull-home"),
                OCILLM_MODELS=str(work / "pull-home/models"),
            )
            shutil.rmtree(work / "pull-home", ignore_errors=True)
            settle()
            pulls.append(timed([python, "-m", "ocillm", "pull", ref, "--quiet"], pull_env))
        results["ocillm push"], results["ocillm re-push"], results["ocillm pull"] = (
            best(pushes), best(repushes), best(pulls),
        )  # fmt: skip

        skopeo = shutil.which("skopeo")
        if skopeo:
            s_push, s_pull = [], []
            target = f"docker://{regs['skopeo'].host}/bench/model:1"
            for _ in range(args.runs):
                drop_tag_storage(regs["skopeo"])
                settle()
                s_push.append(
                    timed(
                        [
                            skopeo,
                            "copy",
                            "--quiet",
                            "--dest-tls-verify=false",
                            f"oci:{store}:{ref}",
                            target,
                        ]
                    )
                )
                shutil.rmtree(work / "skopeo-pull", ignore_errors=True)
                settle()
                s_pull.append(
                    timed(
                        [
                            skopeo,
                            "copy",
                            "--quiet",
                            "--src-tls-verify=false",
                            target,
                            f"oci:{work / 'skopeo-pull'}:x",
                        ]
                    )
                )
            results["skopeo push"], results["skopeo pull"] = best(s_push), best(s_pull)

        curl = shutil.which("curl")
        if curl:
            c_put, c_get, c_sync = [], [], []
            host = regs["curl"].url
            for _ in range(args.runs):
                drop_tag_storage(regs["curl"])
                settle()
                start = time.perf_counter()
                request = urllib.request.Request(
                    f"{host}/v2/bench/blob/blobs/uploads/", method="POST"
                )
                with urllib.request.urlopen(request) as response:
                    location = urllib.parse.urljoin(host, response.headers["Location"])
                sep = "&" if "?" in location else "?"
                put = timed(
                    [
                        curl,
                        "-sSf",
                        "-X",
                        "PUT",
                        "-H",
                        "Content-Type: application/octet-stream",
                        "--upload-file",
                        str(blob),
                        f"{location}{sep}digest={model['digest']}",
                    ]
                )
                c_put.append(Run(time.perf_counter() - start, put.rss_mib))
                out = work / "curl-get.bin"
                out.unlink(missing_ok=True)
                settle()
                url = f"{host}/v2/bench/blob/blobs/{model['digest']}"
                get = timed([curl, "-sSf", "-o", str(out), url])
                c_get.append(get)
                start = time.perf_counter()
                fd = os.open(out, os.O_RDONLY)
                os.fsync(fd)  # what the store does before a blob becomes visible
                os.close(fd)
                c_sync.append(Run(get.seconds + time.perf_counter() - start, get.rss_mib))
            results["curl PUT"], results["curl GET"] = best(c_put), best(c_get)
            results["curl GET+fsync"] = best(c_sync)
    finally:
        for reg in regs.values():
            reg.stop()

    print(f"{'step':<16}{'seconds':>9}{'MB/s':>9}{'peak RSS MiB':>14}")
    for name, run in results.items():
        rate = "" if "re-push" in name else f"{size_gib * 1024 / run.seconds:9.0f}"
        print(f"{name:<16}{run.seconds:9.2f}{rate:>9}{run.rss_mib:14.0f}")
    print()
    checks: list[tuple[str, float, float, str]] = []
    if "curl GET" in results:
        checks.append(
            (
                "pull / curl GET",
                results["ocillm pull"].seconds / results["curl GET"].seconds,
                1.2,
                "x",
            )
        )
        checks.append(
            (
                "push / curl PUT",
                results["ocillm push"].seconds / results["curl PUT"].seconds,
                1.1,
                "x",
            )
        )
    if "skopeo pull" in results:
        checks.append(
            (
                "pull / skopeo",
                results["ocillm pull"].seconds / results["skopeo pull"].seconds,
                0.5,
                "x",
            )
        )
        checks.append(
            (
                "push / skopeo",
                results["ocillm push"].seconds / results["skopeo push"].seconds,
                0.8,
                "x",
            )
        )
    checks.append(("re-push (CLI)", results["ocillm re-push"].seconds, 0.3, " s"))
    checks.append(("re-push (library)", min(inner), 0.3, " s"))
    rss = max(results[k].rss_mib for k in ("ocillm push", "ocillm pull", "ocillm re-push"))
    checks.append(("peak RSS (MB)", rss * MiB / 1e6, 150, " MB"))
    for label, value, goal, unit in checks:
        verdict = "ok" if value <= goal else "MISSED"
        print(f"{label:<18}{value:8.2f}{unit:<3} goal <= {goal:g}{unit}  {verdict}")
    print(
        "\nre-push (CLI) includes Python start-up and imports; re-push (library) times the push()"
        "\ncall alone. The store fsyncs every blob before it becomes visible; curl does not, so"
        "\n'curl GET+fsync' is the like-for-like limit for a durable, verified pull."
    )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

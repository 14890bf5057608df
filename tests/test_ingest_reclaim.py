"""What ``ingest/`` holds is reclaimed once no writer will finish it, and never before.

A build killed with SIGKILL mid-copy leaves its temp file; the next build and ``prune`` remove
it at once (its writer's lock is free). A live writer's temp file and a partial download that
a pull is writing are never touched. A partial download from an interrupted pull is kept for
resuming until it is stale (a day untouched) or ``prune --ingest`` clears it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, REPO_ROOT
from test_disk_full import big_image

from ocillm.errors import RegistryError
from ocillm.oci import parse_reference
from ocillm.oci.digest import digest_hex
from ocillm.progress import Event
from ocillm.registry import TransferOptions, pull, push
from ocillm.registry.download import partial_files
from ocillm.store import Store

MiB = 1 << 20
KILLED_SIZE = 200 * MiB
DAY = 24 * 3600


def env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{REPO_ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    return env


def temps(models: Path) -> list[Path]:
    return sorted((models / "ingest").glob("tmp-*"))


def big_modelfile(tiny_gguf: Path, tmp_path: Path) -> Path:
    """A Modelfile over a 200 MiB GGUF (``tiny_gguf`` extended sparsely: a valid GGUF)."""
    big = tmp_path / "big.gguf"
    shutil.copyfile(tiny_gguf, big)
    os.truncate(big, KILLED_SIZE)
    modelfile = tmp_path / "Modelfile.big"
    modelfile.write_text(f"FROM {big}\n")
    return modelfile


def kill_build_mid_copy(modelfile: Path, models: Path) -> Path:
    """Start ``ocillm build``, SIGKILL it once its temp file has data; the file it leaves."""
    before = set(temps(models))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocillm", "build", "-f", str(modelfile), "-t", "big", "--quiet"],
        env=env_with_repo(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            fresh = [p for p in temps(models) if p not in before]
            if fresh and fresh[0].stat().st_size > 0:
                break
            assert proc.poll() is None, f"the build ended before it was killed: {proc.stderr}"
            time.sleep(0.002)
        else:
            pytest.fail("the build never started copying")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (left,) = fresh
    assert left.exists() and left.stat().st_size > 0  # what a killed build leaves behind
    return left


class Helper:
    """A Python child process running ``code``; it prints ``ready`` once set up, then waits for
    a line on stdin before finishing (so the test acts while it is alive)."""

    def __init__(self, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=env_with_repo(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "ready", line

    def finish(self) -> str:
        out, _ = self.proc.communicate("go\n", timeout=60)
        assert self.proc.returncode == 0
        return out.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def helpers() -> Iterator[list[Helper]]:
    made: list[Helper] = []
    yield made
    for h in made:
        h.stop()


LIVE_WRITER = """
import sys
from pathlib import Path
from ocillm.store import Store

store = Store.open(Path(sys.argv[1]))

def chunks():
    yield b"a" * (1 << 20)
    print("ready", flush=True)  # the first MiB is on disk in ingest/tmp-*
    sys.stdin.readline()
    yield b"b" * (1 << 20)

digest, size = store.blobs.put_stream(chunks())
print(digest, flush=True)
"""

BLOB_LOCK_HOLDER = """
import sys
from pathlib import Path
from ocillm.store.locks import file_lock

with file_lock(Path(sys.argv[1]) / "locks" / f"blob-{sys.argv[2]}.lock"):
    print("ready", flush=True)  # as a running pull of that blob holds it
    sys.stdin.readline()
"""


def test_a_build_after_a_killed_build_reclaims_its_temp_file(
    cli: CLI, ocillm_home: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    models = ocillm_home / "models"
    modelfile = big_modelfile(tiny_gguf, tmp_path)
    left = kill_build_mid_copy(modelfile, models)

    out = cli("build", "-f", modelfile, "-t", "big", "--quiet")
    assert out.returncode == 0, out.stderr
    assert not left.exists()
    assert temps(models) == []
    assert not list((models / "locks").glob("tmp-*"))


def test_prune_reclaims_a_killed_builds_temp_file_at_once(
    cli: CLI, ocillm_home: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    models = ocillm_home / "models"
    left = kill_build_mid_copy(big_modelfile(tiny_gguf, tmp_path), models)

    out = cli("prune")
    assert out.returncode == 0, out.stderr
    assert not left.exists() and temps(models) == []
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "deleted 0 unreferenced blobs, freed 0 B"
    assert lines[1].startswith("removed 1 abandoned temp file")
    assert lines[1].endswith((" KB", " MB"))  # what it freed


def test_a_live_writers_temp_file_is_never_reclaimed(
    cli: CLI, ocillm_home: Path, tiny_gguf: Path, tmp_path: Path, helpers: list[Helper]
) -> None:
    models = ocillm_home / "models"
    Store.open(models)
    writer = Helper(LIVE_WRITER, str(models))
    helpers.append(writer)
    (live,) = temps(models)
    inode = live.stat().st_ino

    assert cli("prune", "--ingest").returncode == 0
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {tiny_gguf}\n")
    assert cli("build", "-f", modelfile, "-t", "tiny", "--quiet").returncode == 0
    assert live.exists() and live.stat().st_ino == inode

    digest = writer.finish()  # the writer finishes and commits what it wrote
    store = Store.open(models)
    with store.blobs.open(digest) as f:
        assert f.read() == b"a" * MiB + b"b" * MiB
    assert temps(models) == []


def test_an_unlocked_temp_file_goes_once_the_pid_in_its_name_is_gone(
    cli: CLI, ocillm_home: Path, helpers: list[Helper]
) -> None:
    models = ocillm_home / "models"
    ingest = Store.open(models).blobs.ingest
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = ingest / f"tmp-{int(gone.stdout)}-{'0' * 32}"
    dead.write_bytes(b"x" * 4096)
    alive = ingest / f"tmp-{os.getpid()}-{'1' * 32}"  # this test process: alive
    alive.write_bytes(b"y" * 4096)

    out = cli("prune", "--ingest")
    assert out.returncode == 0, out.stderr
    assert not dead.exists()
    assert alive.exists()  # a live PID without a lock: kept until it is an hour old
    hour_ago = time.time() - 3700
    os.utime(alive, (hour_ago, hour_ago))
    assert cli("prune").returncode == 0
    assert not alive.exists()


def interrupted_pull(registry: Any, tmp_path: Path, name: str) -> tuple[Store, str]:
    """A pull stopped mid-blob (the registry dies): the store keeps a resumable partial."""
    ref = f"{registry.host}/team/{name}:1"
    source = Store.open(tmp_path / f"source-{name}")
    weight = big_image(source, ref, tmp_path)
    push(parse_reference(ref), source)
    stopped = threading.Event()

    def stop_midway(event: Event) -> None:
        if event.digest == weight and (event.completed or 0) > 0 and not stopped.is_set():
            stopped.set()
            registry.stop()

    store = Store.open(tmp_path / "home" / "models")
    with pytest.raises(RegistryError):
        pull(parse_reference(ref), store, options=TransferOptions(retries=1), report=stop_midway)
    assert partial_files(store, weight)
    registry.restart()
    return store, weight


def test_prune_keeps_a_resumable_partial_and_prune_ingest_clears_it(
    cli: CLI, registry: Any, tmp_path: Path, helpers: list[Helper]
) -> None:
    store, weight = interrupted_pull(registry, tmp_path, "resume")
    env = {"OCILLM_HOME": str(store.root.parent), "OCILLM_MODELS": str(store.root)}

    out = cli("prune", env=env)
    assert out.returncode == 0, out.stderr
    assert partial_files(store, weight)
    assert "kept 1 partial download" in out.stdout and "prune --ingest" in out.stdout

    holder = Helper(BLOB_LOCK_HOLDER, str(store.root), digest_hex(weight))
    helpers.append(holder)
    out = cli("prune", "--ingest", env=env)
    assert out.returncode == 0, out.stderr
    assert partial_files(store, weight)  # a pull is writing it: never touched
    holder.finish()

    out = cli("prune", "--ingest", env=env)
    assert out.returncode == 0, out.stderr
    assert not partial_files(store, weight)
    assert "removed 1 partial download" in out.stdout
    assert not list(store.blobs.ingest.iterdir())


def test_plain_prune_removes_a_partial_untouched_for_a_day(
    cli: CLI, registry: Any, tmp_path: Path
) -> None:
    store, weight = interrupted_pull(registry, tmp_path, "stale")
    env = {"OCILLM_HOME": str(store.root.parent), "OCILLM_MODELS": str(store.root)}
    old = time.time() - DAY - 60
    for path in partial_files(store, weight):
        os.utime(path, (old, old))

    out = cli("prune", env=env)
    assert out.returncode == 0, out.stderr
    assert not partial_files(store, weight)
    assert "removed 1 partial download" in out.stdout


RACING_WRITER = """
import os, sys
from pathlib import Path
from ocillm.store import Store

store = Store.open(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    data = os.urandom(64) + str(i).encode()
    assert store.blobs.read_bytes(store.blobs.put_bytes(data)) == data
"""

SWEEPER = """
import select, sys
from pathlib import Path
from ocillm.store.ingest import reclaim_temps

print("ready", flush=True)
sweeps = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    reclaim_temps(Path(sys.argv[1]))
    sweeps += 1
print(sweeps)
"""


def test_writers_racing_a_sweeper_lose_nothing(ocillm_home: Path, helpers: list[Helper]) -> None:
    models = ocillm_home / "models"
    Store.open(models)
    sweeper = Helper(SWEEPER, str(models))
    helpers.append(sweeper)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", RACING_WRITER, str(models), "300"],
            env=env_with_repo(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err  # no temp file vanished under its writer
    assert int(sweeper.finish()) > 0
    assert temps(models) == [] and not list((models / "locks").glob("tmp-*"))
    assert len(Store.open(models).blobs.digests()) == 600

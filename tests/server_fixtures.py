"""A live ``python -m ocillm serve`` for tests: a fresh home, a free loopback port, stopped by PID.

``ServerProcess(home, env).start()`` waits until ``GET /`` answers; ``.stop()`` sends SIGTERM
(the daemon then unloads every runner) and SIGKILL only if it does not exit. Images are built
into the server's store with the library (``build_tiny``), before or while it runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from procutil import free_port  # registry-fixtures/procutil.py (on sys.path via conftest)

from ocillm.build.builder import build_image
from ocillm.oci.reference import parse_reference
from ocillm.store import Store

REPO_ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.models = home / "models"
        self.extra_env = dict(env or {})
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / "serve.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        pythonpath = env.get("PYTHONPATH")
        env["PYTHONPATH"] = f"{REPO_ROOT}{os.pathsep}{pythonpath}" if pythonpath else str(REPO_ROOT)
        env.update(
            {
                "OCILLM_HOME": str(self.home),
                "OCILLM_MODELS": str(self.models),
                "OCILLM_HOST": self.host,
                "NO_COLOR": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ocillm", "serve"],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        headers = self.headers()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ocillm serve exited: {self.log()[-2000:]}")
            try:
                if httpx.get(self.url + "/", headers=headers, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"ocillm serve did not answer in {timeout}s: {self.log()[-2000:]}")

    def headers(self) -> dict[str, str]:
        key = self.extra_env.get("OCILLM_API_KEY")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM by PID, then SIGKILL after ``timeout``; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def runner_pids(self) -> list[int]:
        resp = httpx.get(self.url + "/api/ps", headers=self.headers(), timeout=10)
        return [int(m["pid"]) for m in resp.json()["models"] if m.get("pid")]


def build_model(models: Path, gguf: Path, tag: str, modelfile: str = "") -> None:
    """Build ``FROM gguf`` (plus ``modelfile`` lines) into the store at ``models`` as ``tag``."""
    work = models.parent / f"build-{tag.replace(':', '-').replace('/', '-')}"
    work.mkdir(parents=True, exist_ok=True)
    path = work / "Modelfile"
    path.write_text(f"FROM {gguf}\n{modelfile}")
    build_image(path, [parse_reference(tag)], store=Store.open(models))


def process_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return False

"""``ocillm run``, ``ps`` and ``stop`` against a live ``ocillm serve`` (``serve`` itself starts the
server of this module): one-shot answers, the interactive REPL through a pseudo-terminal,
Ollama's table and messages.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_fixtures import REPO_ROOT, ServerProcess, build_model, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-cli")
    build_model(
        home / "models",
        tiny_gguf,
        "tiny",
        'PARAMETER num_predict 6\nSYSTEM "be nice"\nLICENSE "MIT-ish"\n',
    )
    proc = ServerProcess(home).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def ocillm(
    server: ServerProcess, *args: str, input: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocillm", *args],
        input=input,
        env={**server.env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_one_shot_prints_the_answer(server: ServerProcess) -> None:
    out = ocillm(server, "run", "tiny", "hello", "there")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and out.stdout.endswith("\n")
    assert out.stderr == ""


def test_run_reads_a_piped_prompt_and_verbose_prints_timings(server: ServerProcess) -> None:
    out = ocillm(server, "run", "tiny", "--verbose", input="from stdin\n")
    assert out.returncode == 0, out.stderr
    for label in ("total duration:", "load duration:", "prompt eval count:", "eval rate:"):
        assert label in out.stderr
    assert re.search(r"eval count:\s+6 token\(s\)", out.stderr)
    assert re.search(r"eval duration:\s+[\d.]+(ms|µs|s)\n", out.stderr)


def test_run_with_format_json(server: ServerProcess) -> None:
    out = ocillm(server, "run", "tiny", "--format", "json", "x")
    assert out.returncode == 0, out.stderr
    assert out.stdout.lstrip().startswith("{")


def test_ps_prints_ollamas_table(server: ServerProcess) -> None:
    assert ocillm(server, "run", "tiny", "--keepalive", "10m", "x").returncode == 0
    out = ocillm(server, "ps")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    row = next(r for r in rows if r.startswith("tiny:latest"))
    assert "100% CPU" in row and " 256 " in row
    assert re.search(r"(9|10) minutes from now$", row)


def test_stop_unloads_and_names_a_missing_model(server: ServerProcess) -> None:
    assert ocillm(server, "run", "tiny", "x").returncode == 0
    assert ocillm(server, "stop", "tiny").returncode == 0
    assert "tiny:latest" not in ocillm(server, "ps").stdout
    out = ocillm(server, "stop", "nope")
    assert out.returncode == 1
    assert out.stderr.strip() == 'Error: couldn\'t find model "nope" to stop'


def test_commands_say_when_no_daemon_runs(server: ServerProcess) -> None:
    out = ocillm(server, "ps", env={"OCILLM_HOST": f"127.0.0.1:{free_port()}"})
    assert out.returncode == 1
    assert "could not connect to ocillm serve" in out.stderr


def test_run_pulls_a_missing_model_through_the_daemon(server: ServerProcess, registry: Any) -> None:
    from ocillm.oci.reference import parse_reference
    from ocillm.registry import push
    from ocillm.store import Store

    remote = f"{registry.host}/test/tiny:1"
    push(parse_reference("tiny"), Store.open(server.models), target=parse_reference(remote))
    out = ocillm(server, "run", remote, "hello")
    assert out.returncode == 0, out.stderr
    assert "pulling manifest" in out.stderr and "success" in out.stderr
    assert out.stdout.strip()
    assert remote in ocillm(server, "list").stdout


class Terminal:
    """``ocillm run`` on a pseudo-terminal, read until an expected text appears."""

    def __init__(self, server: ServerProcess, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ocillm", "run", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**server.env(), "TERM": "dumb", "PYTHONPATH": str(REPO_ROOT)},
            close_fds=True,
        )
        os.close(slave)
        self.seen = ""
        self.pos = 0  # what was matched so far: each expect looks only after it

    def expect(self, text: str, timeout: float = 60.0) -> str:
        """Wait for ``text`` (newlines as the terminal writes them, CR LF) after the last match."""
        text = text.replace("\n", "\r\n")
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.pos :]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not seen; got {self.seen[-2000:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    break
                self.seen += data.decode(errors="replace")
        found = self.seen.find(text, self.pos)
        assert found >= 0, self.seen[-2000:]
        self.pos = found + len(text)
        return self.seen

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        try:
            return self.proc.wait(30)
        finally:
            os.close(self.master)


def test_interactive_repl(server: ServerProcess) -> None:
    term = Terminal(server, "tiny")
    try:
        term.expect(">>> ")
        term.send("/?")
        term.expect("/bye")
        term.send("/set parameter num_predict 3")
        term.expect("Set parameter 'num_predict' to '3'")
        # Greedy, so the random-weight model cannot draw its end token early (CI once drew it
        # at the second token) and both turns reach num_predict.
        term.send("/set parameter temperature 0")
        term.expect("Set parameter 'temperature' to '0'")
        term.send("/set verbose")
        term.expect("Set 'verbose' mode.")
        term.send("hello model")
        term.expect("eval count:           3 token(s)")
        term.send('"""first line')
        term.expect("... ")
        term.send('second line"""')
        term.expect("eval count:           3 token(s)\n", timeout=60)
        term.send("/show system")
        term.expect("be nice")
        term.send("/show license")
        term.expect("MIT-ish")
        term.send("/set system you are terse")
        term.expect("Set system message.")
        term.send("/show system")
        term.expect("you are terse")
        term.send("/clear")
        term.expect("Cleared session context")
        term.send("/nonsense")
        term.expect("Unknown command '/nonsense'. Type /? for help")
        term.send("/bye")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    history = (server.home / "history").read_text()
    assert "hello model" in history


def test_timings_and_until_read_as_ollamas() -> None:
    from datetime import datetime, timedelta, timezone

    from ocillm.cli.serve_cmd import go_duration, metrics_summary, until_text

    assert [go_duration(n) for n in (0, 999, 1500, 2_500_000, 1_234_567_891, 83_000_000_000)] == [
        "0s",
        "999ns",
        "1.5µs",
        "2.5ms",
        "1.234567891s",
        "1m23s",
    ]
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    iso = lambda d: (now + d).isoformat().replace("+00:00", "Z")  # noqa: E731
    assert until_text(iso(timedelta(minutes=4, seconds=30)), now) == "4 minutes from now"
    assert until_text(iso(timedelta(days=365 * 200)), now) == "Forever"
    assert until_text(iso(timedelta(seconds=-1)), now) == "Stopping..."
    summary = metrics_summary(
        {"total_duration": 2_000_000_000, "eval_count": 10, "eval_duration": 500_000_000}
    )
    assert summary.splitlines() == [
        "total duration:       2s",
        "eval count:           10 token(s)",
        "eval duration:        500ms",
        "eval rate:            20.00 tokens/s",
    ]

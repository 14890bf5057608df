"""The demo's last check: a crashed runner's error answer fails the demo; a real answer passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHECK = Path(__file__).resolve().parents[1] / "examples" / "check_answer.py"


def check(answer: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK)], input=answer, capture_output=True, text=True, check=False
    )


def test_an_error_answer_fails_the_demo() -> None:
    crash = {"error": "runner process has terminated: killed by SIGSEGV"}
    result = check(json.dumps(crash))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "demo failed: the server answered with an error: "
        "runner process has terminated: killed by SIGSEGV"
    )


def test_an_empty_or_broken_answer_fails_the_demo() -> None:
    assert check(json.dumps({"message": {"role": "assistant", "content": " "}})).returncode == 1
    assert check("<html>502</html>").returncode == 1


def test_a_real_answer_passes() -> None:
    answer = {"model": "gemma3-demo:270m", "message": {"role": "assistant", "content": "Rayleigh"}}
    result = check(json.dumps(answer))
    assert result.returncode == 0, result.stderr

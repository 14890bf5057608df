"""Exit 0 when an Ollama ``/api/chat`` answer (JSON on stdin) holds a real reply, else print why
and exit 1: the demo must not report success when the model answered with an error."""

from __future__ import annotations

import json
import sys


def problem(text: str) -> str | None:
    """Why ``text`` is not a real answer, or None when it is one."""
    try:
        answer = json.loads(text)
    except ValueError:
        return f"not JSON: {text[:200]!r}"
    if not isinstance(answer, dict):
        return f"not an answer object: {text[:200]!r}"
    if "error" in answer:
        return f"the server answered with an error: {answer['error']}"
    content = (answer.get("message") or {}).get("content", "")
    if not isinstance(content, str) or not content.strip():
        return "the answer has no content"
    return None


def main() -> int:
    why = problem(sys.stdin.read())
    if why is None:
        return 0
    print(f"demo failed: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""Split a thinking model's output into ``thinking`` and ``content``, as Ollama's parser does.

The tags come from the template (``infer_thinking_tags``: the text around ``.Thinking``, e.g.
``<think>`` and ``</think>``). Leading whitespace before the opening tag and around the closing
tag is dropped; output that does not start with the opening tag is all content. A tag split across
chunks is held back until it is whole. A prompt that already ends with the opening tag (templates
that prefill it) starts inside the thinking.
"""

from __future__ import annotations

from enum import Enum


class _State(Enum):
    LOOKING = 0  # before the opening tag (eating whitespace)
    STARTED = 1  # just after the opening tag (eating whitespace)
    THINKING = 2
    CLOSED = 3  # just after the closing tag (eating whitespace)
    DONE = 4


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkingParser:
    def __init__(self, opening: str, closing: str, *, prompt: str = "") -> None:
        self.opening = opening
        self.closing = closing
        self.state = _State.LOOKING
        self.buffer = ""
        if prompt.rstrip().endswith(opening):
            self.state = _State.STARTED

    def add(self, text: str) -> tuple[str, str]:
        """Feed generated text; returns the (thinking, content) that is now certain."""
        self.buffer += text
        thinking: list[str] = []
        content: list[str] = []
        while True:
            buf = self.buffer
            if self.state is _State.LOOKING:
                stripped = buf.lstrip()
                if stripped.startswith(self.opening):
                    self.buffer = stripped[len(self.opening) :]
                    self.state = _State.STARTED
                    continue
                if not stripped or self.opening.startswith(stripped):
                    return "".join(thinking), "".join(content)  # wait for more
                self.state = _State.DONE
                continue
            if self.state is _State.STARTED:
                self.buffer = buf.lstrip()
                if not self.buffer:
                    return "".join(thinking), "".join(content)
                self.state = _State.THINKING
                continue
            if self.state is _State.THINKING:
                at = buf.find(self.closing)
                if at >= 0:
                    thinking.append(buf[:at].rstrip())
                    self.buffer = buf[at + len(self.closing) :]
                    self.state = _State.CLOSED
                    continue
                keep = _partial_suffix(buf, self.closing)
                # Trailing whitespace may precede the closing tag: hold it back too.
                body = buf[: len(buf) - keep]
                held = len(body) - len(body.rstrip())
                thinking.append(body[: len(body) - held])
                self.buffer = buf[len(body) - held :]
                return "".join(thinking), "".join(content)
            if self.state is _State.CLOSED:
                self.buffer = buf.lstrip()
                if not self.buffer:
                    return "".join(thinking), "".join(content)
                self.state = _State.DONE
                continue
            content.append(buf)
            self.buffer = ""
            return "".join(thinking), "".join(content)

    def finish(self) -> tuple[str, str]:
        """What is left when generation ends (a partial tag is text after all)."""
        buf, self.buffer = self.buffer, ""
        if self.state in (_State.STARTED, _State.THINKING):
            return buf, ""
        if self.state is _State.LOOKING and buf.strip():
            return "", buf
        return "", buf if self.state is _State.DONE else ""

"""Stop sequences, scanned in the generated text: which one ended a generation, and where.

llama-cpp-python stops at a stop string too, but reports ``"stop"`` whether the model wrote its
end-of-generation token or a stop string, so an API that names the stop sequence (Anthropic's
``stop_sequence``) could not. The engine therefore scans the text itself: text that may be the
start of a stop sequence is held back until it is known not to be one; at the earliest stop
sequence in the text the generation ends, the text before it is kept and the sequence dropped.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""
        self.matched: str | None = None

    def add(self, text: str) -> str:
        """Feed generated text; returns the text that is certain to come before any stop."""
        if self.matched is not None:
            return ""
        buf = self.held + text
        found = [(buf.find(s), s) for s in self.stops if s in buf]
        if found:
            at, stop = min(found, key=lambda f: f[0])
            self.matched, self.held = stop, ""
            return buf[:at]
        keep = max((_partial(buf, s) for s in self.stops), default=0)
        self.held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep]

    def finish(self) -> str:
        """What was held back when the generation ends without a stop sequence."""
        held, self.held = self.held, ""
        return held if self.matched is None else ""


def _partial(text: str, stop: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``stop``."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-n:]):
            return n
    return 0

"""Ollama's ``keep_alive`` values: a number is seconds, a string is a Go duration ("5m", "1h30m").

Negative means forever (``math.inf``); 0 means unload as soon as the request is done. So does
anything beyond Go's largest ``time.Duration`` (about 292 years), where Ollama's own value
saturates: ``keep_alive: 1e20`` is forever, not a date past the end of the calendar.
"""

from __future__ import annotations

import math
import re

from ocillm.errors import UsageError

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
#: Go's ``time.Duration(math.MaxInt64)`` in seconds: Ollama's "forever".
MAX_DURATION = (2**63 - 1) / 1e9
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds: "300ms", "1.5h", "1h30m", "-5m", "0"."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    body = s[1:] if s[:1] in "+-" else s
    if body == "0":
        return 0.0
    if not body:
        raise UsageError(f"invalid duration {text!r}")
    total, pos = 0.0, 0
    for m in _PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(body):
        raise UsageError(f"invalid duration {text!r}: expected a number of seconds or e.g. '5m'")
    return sign * total


def parse_keep_alive(value: str | float | None) -> float | None:
    """Seconds to keep a model loaded; ``None`` stays ``None`` (not given); negative → ``inf``.

    Numbers (and numeric strings, as ``OLLAMA_KEEP_ALIVE`` accepts) are seconds.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"invalid keep_alive {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip()
        if not text:
            return None
        try:
            seconds = float(text)
        except ValueError:
            seconds = parse_go_duration(text)
    if math.isnan(seconds):
        raise UsageError(f"invalid keep_alive {value!r}")
    return math.inf if seconds < 0 or seconds >= MAX_DURATION else seconds

"""How the CLI shows things: rich progress for a person, NDJSON with --json, nothing with --quiet."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ocillm.progress import Event, Reporter

stderr = Console(stderr=True, highlight=False)


class Mode(str, Enum):
    HUMAN = "human"
    JSON = "json"
    QUIET = "quiet"


def mode_of(json_flag: bool, quiet: bool) -> Mode:
    return Mode.JSON if json_flag else Mode.QUIET if quiet else Mode.HUMAN


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def reporter(mode: Mode) -> Iterator[Reporter]:
    """A progress reporter for ``mode``; bars are drawn on stderr so stdout stays the result."""
    if mode is Mode.JSON:
        yield lambda event: emit_json(event.wire())
        return
    if mode is Mode.QUIET or not stderr.is_terminal:
        if mode is Mode.QUIET:
            yield lambda event: None
            return
        yield _plain_reporter()
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def report(event: Event) -> None:
            key = event.digest or event.status
            # A bar only for work in progress; an event that is already complete is a line.
            if event.total and (key in tasks or event.completed != event.total):
                if key not in tasks:
                    tasks[key] = progress.add_task(event.status, total=event.total)
                progress.update(tasks[key], completed=event.completed or 0)
            else:
                progress.console.print(event.status, style="dim")

        yield report


def _plain_reporter() -> Reporter:
    """Status lines without bars (not a terminal), for CI logs: a blob's line comes once, with its
    size, when it starts; its progress events after that would only repeat it."""
    seen: set[tuple[str, str | None]] = set()

    def report(event: Event) -> None:
        if event.total is None:
            print(event.status, file=sys.stderr, flush=True)
            return
        key = (event.status, event.digest)
        if key in seen:
            return
        seen.add(key)
        print(f"{event.status} ({human_bytes(event.total)})", file=sys.stderr, flush=True)

    return report


def print_retry(notice: object) -> None:
    """A registry retry, one line on stderr in every mode (stdout stays the result)."""
    print(str(notice), file=sys.stderr, flush=True)


def print_warning(line: str) -> None:
    """A warning the command goes on after (a trust policy in ``warn`` mode), one stderr line."""
    print(f"warning: {line}", file=sys.stderr, flush=True)


def human_bytes(n: int) -> str:
    """Ollama's format.HumanBytes (decimal units)."""
    for limit, unit in ((1000**4, "TB"), (1000**3, "GB"), (1000**2, "MB"), (1000, "KB")):
        if n >= limit:
            value = n / limit
            if value >= 10 or value == math.trunc(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{n} B"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 86400 / 365)} years"


def human_time(when: datetime | None, now: datetime | None = None) -> str:
    """Ollama's format.HumanTime: "2 weeks ago", "About a minute ago"."""
    if when is None or when.timestamp() == 0:
        return "Never"
    delta = ((now or datetime.now(timezone.utc)) - when).total_seconds()
    if delta < 0:
        return _duration(-delta) + " from now"
    return _duration(delta) + " ago"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Ollama's tabwriter layout: columns padded to the widest cell plus three spaces."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [
            str(c).ljust(w + 3) if i < len(row) - 1 else str(c)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)

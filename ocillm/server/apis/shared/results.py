"""One reading of the native chat and generate answers, for every API to write in its shape.

A native chunk (:mod:`ocillm.server.generate`) becomes a :class:`Piece`: the thinking and text
it adds, the tool calls it completes, and on the last one why the answer ended and its token
counts. :func:`answer` gathers the pieces of a whole answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ocillm.server.streaming import Chunk


def json_text(value: Any) -> str:
    """JSON text as the APIs send tool arguments: compact, not ASCII-escaped."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Call:
    id: str
    index: int
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json_text(self.arguments)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Piece:
    thinking: str = ""
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    done: bool = False
    done_reason: str | None = None  # stop, length (load/unload never reach the APIs' readers)
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    #: Ollama's entries ({token, logprob, bytes, top_logprobs?}) for the tokens of this piece
    logprobs: list[dict[str, Any]] = field(default_factory=list)


def calls_of(message: Mapping[str, Any]) -> list[Call]:
    out = []
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        out.append(
            Call(
                id=str(call.get("id") or ""),
                index=int(function.get("index", i)),
                name=str(function.get("name", "")),
                arguments=dict(function.get("arguments") or {}),
            )
        )
    return out


def piece(chunk: Chunk) -> Piece:
    """What one native chat (``message``) or generate (``response``) chunk carries."""
    message = chunk.get("message")
    if isinstance(message, Mapping):
        text, thinking = message.get("content"), message.get("thinking")
        calls = calls_of(message)
    else:
        text, thinking, calls = chunk.get("response"), chunk.get("thinking"), []
    done = bool(chunk.get("done"))
    return Piece(
        thinking=str(thinking or ""),
        text=str(text or ""),
        calls=calls,
        done=done,
        done_reason=str(chunk.get("done_reason") or "stop") if done else None,
        stop_sequence=chunk.get("stop_sequence"),
        usage=Usage(int(chunk.get("prompt_eval_count") or 0), int(chunk.get("eval_count") or 0)),
        logprobs=list(chunk.get("logprobs") or []),
    )


@dataclass
class Answer:
    thinking: str
    text: str
    calls: list[Call]
    done_reason: str
    stop_sequence: str | None
    usage: Usage
    logprobs: list[dict[str, Any]] = field(default_factory=list)


def answer(pieces: Iterable[Piece]) -> Answer:
    """A whole answer: thinking and text joined, every call, the last piece's end and counts."""
    thinking, text, calls, logprobs = [], [], [], []
    last = Piece(done=True, done_reason="stop")
    for p in pieces:
        thinking.append(p.thinking)
        text.append(p.text)
        calls.extend(p.calls)
        logprobs.extend(p.logprobs)
        last = p
    return Answer(
        thinking="".join(thinking),
        text="".join(text),
        calls=calls,
        done_reason=last.done_reason or "stop",
        stop_sequence=last.stop_sequence,
        usage=last.usage,
        logprobs=logprobs,
    )

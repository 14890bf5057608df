"""GGUF ``tokenizer.chat_template`` (Hugging Face Jinja) rendering in a sandbox.

Used when an image has no TEMPLATE. The environment mirrors what Hugging Face's
``apply_chat_template`` offers templates: ``trim_blocks``/``lstrip_blocks``, loop controls, a
``tojson`` filter that keeps non-ASCII text, ``raise_exception``, ``strftime_now`` and the
``{% generation %}`` block. It is an ``ImmutableSandboxedEnvironment``: templates cannot reach
Python internals or mutate the inputs, ``range`` is bounded by Jinja's sandbox, and output size is
bounded here.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes as jnodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ocillm.errors import TemplateError

MAX_OUTPUT = 16 * 1024 * 1024


class _ChatTemplateException(Exception):
    pass


def _raise_exception(message: str) -> NoReturn:
    raise _ChatTemplateException(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


class _GenerationBlock(Extension):
    """``{% generation %}...{% endgeneration %}``: renders its body unchanged."""

    tags = {"generation"}  # noqa: RUF012 - Jinja's API

    def parse(self, parser: Parser) -> jnodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jnodes.Scope(body, lineno=lineno)


@functools.lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[loopcontrols, _GenerationBlock],
        undefined=jinja2.Undefined,
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@functools.lru_cache(maxsize=64)
def _compile(jinja_text: str) -> jinja2.Template:
    try:
        return _environment().from_string(jinja_text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            exc.message or "syntax error", line=exc.lineno or 0, column=1, name="chat_template"
        ) from None


def render_chat_template(
    jinja_text: str,
    *,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    max_output: int = MAX_OUTPUT,
    **extra: Any,
) -> str:
    """Render a Hugging Face chat template; TemplateError if it does not parse, raises via
    ``raise_exception``, or breaks the sandbox's rules."""
    tmpl = _compile(jinja_text)
    context: dict[str, Any] = {
        "messages": [dict(m) for m in messages],
        "tools": [dict(t) for t in tools] if tools else None,
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_generation_prompt": add_generation_prompt,
        **extra,
    }
    out: list[str] = []
    size = 0
    try:
        for chunk in tmpl.generate(**context):
            size += len(chunk)
            if size > max_output:
                raise TemplateError(f"output exceeds {max_output} bytes", name="chat_template")
            out.append(chunk)
    except TemplateError:
        raise
    except _ChatTemplateException as exc:
        raise TemplateError(str(exc), name="chat_template") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(str(exc), name="chat_template") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise TemplateError(f"{type(exc).__name__}: {exc}", name="chat_template") from None
    return "".join(out)

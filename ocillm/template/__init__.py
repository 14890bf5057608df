"""Prompt templates: a Go ``text/template`` engine compatible with Ollama's TEMPLATE, and GGUF
Jinja chat templates.

Modules, one job each: ``parser`` (Lark grammar ``ocillm/grammar/gotemplate.lark`` -> ``nodes``),
``exec`` (compile and execute, sandboxed), ``funcs`` (Go builtins + Ollama's functions),
``gofmt``/``gojson`` (Go's value printing and JSON), ``gotypes``/``ollama_types`` (Go-typed
values), ``template`` (``Template``, Vars, the legacy response cut), ``ollama`` (Ollama's
execution paths, render_prompt, truncation), ``capabilities``, ``jinja``.
"""

from __future__ import annotations

from .capabilities import chat_template_capabilities, infer_thinking_tags, template_capabilities
from .exec import Limits
from .jinja import render_chat_template
from .ollama import (
    Values,
    build_messages,
    collate,
    execute,
    render_prompt,
    tag_images,
    think_values,
    truncate_messages,
)
from .template import Template, parse_template

DEFAULT_TEMPLATE = "{{ .Prompt }}"

__all__ = [
    "DEFAULT_TEMPLATE",
    "Limits",
    "Template",
    "Values",
    "build_messages",
    "chat_template_capabilities",
    "collate",
    "execute",
    "infer_thinking_tags",
    "parse_template",
    "render_chat_template",
    "render_prompt",
    "tag_images",
    "template_capabilities",
    "think_values",
    "truncate_messages",
]

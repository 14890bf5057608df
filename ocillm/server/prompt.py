"""Prompts for ``/api/generate`` and ``/api/chat``: which template, which messages, what fits.

The template engine (:mod:`ocillm.template`) renders; this module only chooses. A Go TEMPLATE is
rendered with Ollama's semantics (Modelfile SYSTEM and MESSAGEs prepended as Ollama does); an
image without one uses its GGUF ``tokenizer.chat_template`` (Jinja), else ``{{ .Prompt }}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from ocillm.server.errors import ApiError
from ocillm.server.models import ServedModel, TemplateChoice
from ocillm.server.thinking import ThinkingParser
from ocillm.template import (
    build_messages,
    infer_thinking_tags,
    parse_template,
    render_chat_template,
    render_prompt,
    think_values,
)
from ocillm.template.ollama import drop_old_turns, tag_images

Message = dict[str, Any]
CountTokens = Callable[[str], Coroutine[Any, Any, int]]

THINK_LEVELS = ("low", "medium", "high", "max")
#: Tokens an image counts for when old turns are dropped to fit: Ollama's figure (a CLIP image's
#: 768 embeddings), an upper bound for most projectors (Gemma 3 gives 256).
IMAGE_TOKENS = 768


def check_think(value: Any) -> bool | str | None:
    """A request's ``think``: None, a bool or a level; anything else is Ollama's 400."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in THINK_LEVELS:
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    raise ApiError(400, f"invalid think value: {value!r}")


def resolve_think(model: ServedModel, value: Any) -> bool | str | None:
    """Ollama's rule: a thinking model thinks unless told not to; others refuse ``think``."""
    think = check_think(value)
    thinking = "thinking" in model.capabilities
    if think not in (None, False) and not thinking:
        raise ApiError(400, f'"{model.requested}" does not support thinking')
    if think is None and thinking:
        return True
    return think


#: The tags a GGUF Jinja chat template that thinks writes around its thinking (Qwen3, DeepSeek-R1).
JINJA_THINKING_TAGS = ("<think>", "</think>")


def thinking_parser(
    model: ServedModel, think: bool | str | None, prompt: str, template: str | None = None
) -> ThinkingParser | None:
    """A parser for the output when the model thinks and its template names the tags."""
    if think in (None, False) or "thinking" not in model.capabilities:
        return None
    choice = model.template(template)
    if choice.kind == "jinja":
        opening, closing = JINJA_THINKING_TAGS
        if opening not in choice.text or closing not in choice.text:
            return None
        return ThinkingParser(opening, closing, prompt=prompt)
    opening, closing = infer_thinking_tags(parse_template(choice.text))
    if not opening or not closing:
        return None
    return ThinkingParser(opening, closing, prompt=prompt)


def _think_context(think: bool | str | None) -> dict[str, Any]:
    """What a Jinja chat template reads for ``think``: Hugging Face's ``enable_thinking``
    (Qwen3 and others), ``reasoning_effort`` (gpt-oss and others: the level, ``medium`` for
    ``true``, ``max`` as ``high``), and ``think`` itself. Unset stays unset (templates test ``is
    defined``); ``false`` sets no effort."""
    if think is None:
        return {}
    context: dict[str, Any] = {"think": think, "enable_thinking": think is not False}
    _, level, _ = think_values(think)
    if level:
        context["reasoning_effort"] = "high" if level == "max" else level
    return context


def _jinja(
    model: ServedModel,
    choice: TemplateChoice,
    messages: Sequence[Message],
    tools: Any,
    think: bool | str | None = None,
) -> str:
    bos = model.info.bos_token or ""
    text = render_chat_template(
        choice.text,
        messages=messages,
        tools=tools,
        bos_token=bos,
        eos_token=model.info.eos_token or "",
        add_generation_prompt=True,
        **_think_context(think),
    )
    # The runner's tokenizer adds BOS where the model wants one; do not send it twice.
    if bos and text.startswith(bos):
        text = text[len(bos) :]
    return text


def generate_prompt(
    model: ServedModel,
    *,
    prompt: str,
    system: str | None,
    template: str | None,
    suffix: str | None,
    think: bool | str | None,
    with_model_messages: bool = True,
) -> str:
    choice = model.template(template)
    sys_text = system if system else model.view.system
    model_messages = model.view.messages if with_model_messages else []
    if choice.kind == "jinja":
        messages = build_messages(prompt=prompt, system=sys_text, model_messages=model_messages)
        return _jinja(model, choice, messages, None, think)
    return render_prompt(
        choice.text,
        prompt=prompt,
        system=sys_text,
        suffix=suffix,
        think=think,
        model_messages=model_messages,
    )


def chat_messages(model: ServedModel, messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """The messages rendered: Modelfile MESSAGEs, then the request's, SYSTEM first if needed."""
    return build_messages(messages, system=model.view.system, model_messages=model.view.messages)


def render_chat(
    model: ServedModel,
    messages: list[Message],
    *,
    tools: list[dict[str, Any]] | None,
    think: bool | str | None,
) -> str:
    """The chat prompt of ``messages`` as they are, with the image's template (Go or Jinja);
    each message's images are tagged ``[img-N]`` in its content, as Ollama tags them."""
    messages, _ = tag_images(messages)
    choice = model.template()
    if choice.kind == "jinja":
        return _jinja(model, choice, messages, tools, think)
    return render_prompt(choice.text, messages=messages, tools=tools, think=think)


async def chat_prompt(
    model: ServedModel,
    messages: list[Message],
    *,
    tools: list[dict[str, Any]] | None,
    think: bool | str | None,
    num_ctx: int,
    truncate: bool,
    count_tokens: CountTokens,
) -> tuple[str, list[Any]]:
    """Render the chat; when it does not fit ``num_ctx``, drop the oldest turns (Ollama's rule:
    system messages and the latest turn stay), whichever kind of template renders it. Returns the
    prompt and the images of the messages kept, in the order of their ``[img-N]`` tags."""

    def render(kept: list[Message]) -> str:
        return render_chat(model, kept, tools=tools, think=think)

    def images(kept: list[Message]) -> list[Any]:
        return tag_images(kept)[1]

    text = render(messages)
    if not truncate or len(messages) <= 1:
        return text, images(messages)
    if await count_tokens(text) + IMAGE_TOKENS * len(images(messages)) <= num_ctx:
        return text, images(messages)
    loop = asyncio.get_running_loop()

    def count(rendered: str) -> int:
        return asyncio.run_coroutine_threadsafe(count_tokens(rendered), loop).result()

    kept = await asyncio.to_thread(
        drop_old_turns,
        messages,
        render=render,
        num_ctx=num_ctx,
        count_tokens=count,
        image_tokens=IMAGE_TOKENS,
    )
    return render(kept), images(kept)

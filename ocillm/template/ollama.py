"""Ollama's prompt semantics on top of the template engine.

* :func:`collate`: ``.System`` is every system message joined with a blank line; consecutive
  messages of one role merge (except ``tool``).
* :func:`execute`: Ollama's ``Template.Execute``: the fill-in-the-middle path (Prompt and Suffix
  both set), the messages path (the template mentions ``messages``), or the legacy loop (one
  execution per turn, then the template cut after ``{{ .Response }}``).
* :func:`render_prompt`: what ``/api/chat`` and ``/api/generate`` build from a request.
* :func:`truncate_messages` / :func:`drop_old_turns`: drop the oldest messages until the prompt
  fits ``num_ctx`` (any renderer: Go templates and GGUF Jinja chat templates alike).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from ocillm.errors import TemplateError

from .exec import DEFAULT_LIMITS, Limits
from .ollama_types import convert_messages, convert_tools
from .template import Template, parse_template

Message = Mapping[str, Any]
Think = Union[bool, str, None]

THINK_LEVELS = ("high", "medium", "low", "max")


@dataclass
class Values:
    """Ollama's ``template.Values``."""

    messages: Sequence[Message] = field(default_factory=list)
    tools: list[Mapping[str, Any]] | None = None
    prompt: str = ""
    suffix: str = ""
    think: bool = False
    think_level: str = ""
    is_think_set: bool = False
    force_legacy: bool = False


def think_values(think: Think) -> tuple[bool, str, bool]:
    """(Think, ThinkLevel, IsThinkSet) for a request's ``think`` (bool, level string or unset)."""
    if think is None:
        return False, "", False
    if isinstance(think, bool):
        return think, "medium" if think else "", True
    return think in THINK_LEVELS, str(think), True


def collate(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """Ollama's ``collate``: (joined system text, messages with same-role neighbours merged)."""
    system: list[str] = []
    collated: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role", "")
        content = str(m.get("content") or "")
        if role == "system":
            system.append(content)
        if collated and collated[-1].get("role", "") == role and role != "tool":
            collated[-1]["content"] = str(collated[-1].get("content") or "") + "\n\n" + content
        else:
            collated.append(dict(m))
    return "\n\n".join(system), collated


def execute(tmpl: Template, values: Values, *, limits: Limits = DEFAULT_LIMITS) -> str:
    """Ollama's ``Template.Execute`` (the template as ``template.Parse`` prepared it)."""
    system, messages = collate(values.messages)
    variables = tmpl.vars()
    program = tmpl.ollama_program
    think = {
        "Think": values.think,
        "ThinkLevel": values.think_level,
        "IsThinkSet": values.is_think_set,
    }
    if values.prompt and values.suffix:
        data: dict[str, Any] = {
            "Prompt": values.prompt,
            "Suffix": values.suffix,
            "Response": "",
            **think,
        }
        return program.execute(data, limits)
    if not values.force_legacy and "messages" in variables:
        data = {
            "System": system,
            "Messages": convert_messages(messages),
            "Tools": convert_tools(values.tools),
            "Response": "",
            **think,
        }
        return program.execute(data, limits)
    return _legacy(tmpl, messages, think, limits)


def _legacy(
    tmpl: Template, messages: list[dict[str, Any]], think: dict[str, Any], limits: Limits
) -> str:
    out: list[str] = []
    system = prompt = response = ""
    program = tmpl.ollama_program

    def run() -> None:
        nonlocal system, prompt, response
        data = {"System": system, "Prompt": prompt, "Response": response, **think}
        out.append(program.execute(data, limits))
        system = prompt = response = ""

    for m in messages:
        role = m.get("role", "")
        content = str(m.get("content") or "")
        if role == "system":
            if prompt or response:
                run()
            system = content
        elif role == "user":
            if response:
                run()
            prompt = content
        elif role == "assistant":
            response = content
    data = {"System": system, "Prompt": prompt, "Response": response, **think}
    out.append(tmpl.legacy_final_program.execute(data, limits))
    return "".join(out)


def build_messages(
    messages: Sequence[Message] = (),
    *,
    system: str | None = None,
    prompt: str | None = None,
    images: Sequence[Any] | None = None,
    model_messages: Sequence[Message] = (),
) -> list[dict[str, Any]]:
    """The message list Ollama's server renders.

    chat (``prompt is None``): ``model_messages + messages``; ``system`` (the Modelfile SYSTEM)
    goes first unless ``messages`` starts with its own system message.
    generate (``prompt`` given): ``[system] + model_messages + [user prompt (+ images)]``.
    """
    if prompt is None:
        msgs = [dict(m) for m in (*model_messages, *messages)]
        if system and messages and messages[0].get("role") != "system":
            msgs.insert(0, {"role": "system", "content": system})
        return msgs
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.extend(dict(m) for m in model_messages)
    user: dict[str, Any] = {"role": "user", "content": prompt}
    if images:
        user["images"] = list(images)
    msgs.append(user)
    return msgs


def render_prompt(
    template_text: str,
    *,
    messages: Sequence[Message] = (),
    system: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    think: Think = None,
    suffix: str | None = None,
    prompt: str | None = None,
    images: Sequence[Any] | None = None,
    model_messages: Sequence[Message] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """Render a prompt exactly as Ollama's server does for ``/api/chat`` and ``/api/generate``.

    * chat (``prompt`` is None): ``model_messages`` (Modelfile MESSAGEs) + ``messages`` (the
      request's), ``system`` (the Modelfile SYSTEM) first unless ``messages`` starts with a
      system message;
    * generate (``prompt`` given): ``system`` (the request's, else the Modelfile's), then
      ``model_messages``, then the prompt as a user message with ``images``; with a non-empty
      ``suffix`` the fill-in-the-middle values (Prompt, Suffix) are used instead;
    * ``tools`` (Ollama API tool dicts), ``think`` (``True``/``False``/``"high"``...; ``None``
      when the request did not set it).

    Image tags are not added here; see :func:`tag_images`.
    """
    tmpl = parse_template(template_text)
    think_value, think_level, is_think_set = think_values(think)
    if prompt and suffix:
        values = Values(prompt=prompt, suffix=suffix)
    else:
        values = Values(
            messages=build_messages(
                messages,
                system=system,
                prompt=prompt,
                images=images,
                model_messages=model_messages,
            ),
            tools=list(tools) if tools is not None else None,
        )
    values.think, values.think_level, values.is_think_set = think_value, think_level, is_think_set
    return execute(tmpl, values, limits=limits)


def tag_images(
    messages: Sequence[Message], start: int = 0
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Ollama's image tagging: each image of ``messages[start:]`` gets ``[img-N]`` (N counts from
    0) before the content, or replaces the first ``[img]`` in it. Returns (messages, images)."""
    out = [dict(m) for m in messages]
    media: list[Any] = []
    for m in out[start:]:
        if not m.get("images"):
            continue  # untouched: a None content stays None for the template
        prefix = ""
        content = str(m.get("content") or "")
        for image in m.get("images") or []:
            tag = f"[img-{len(media)}]"
            media.append(image)
            if "[img]" not in content:
                prefix += tag
            else:
                content = content.replace("[img]", tag, 1)
        m["content"] = prefix + content
    return out, media


def truncate_messages(
    template_text: str,
    messages: Sequence[Message],
    *,
    num_ctx: int,
    count_tokens: Callable[[str], int],
    tools: Sequence[Mapping[str, Any]] | None = None,
    think: Think = None,
    image_tokens: int = 0,
) -> list[dict[str, Any]]:
    """Ollama's ``chatPrompt`` truncation for a Go template (see :func:`drop_old_turns`)."""
    return drop_old_turns(
        messages,
        render=lambda kept: render_prompt(template_text, messages=kept, tools=tools, think=think),
        num_ctx=num_ctx,
        count_tokens=count_tokens,
        image_tokens=image_tokens,
    )


def drop_old_turns(
    messages: Sequence[Message],
    *,
    render: Callable[[list[dict[str, Any]]], str],
    num_ctx: int,
    count_tokens: Callable[[str], int],
    image_tokens: int = 0,
) -> list[dict[str, Any]]:
    """Ollama's ``chatPrompt`` truncation: drop messages from the front until ``render`` of the
    rest has at most ``num_ctx`` tokens (``count_tokens`` of the text, plus ``image_tokens`` per
    image kept), always keeping the last message; system messages from the dropped part are
    re-added in front. Returns the messages to render.

    A shortened conversation the template refuses (a Jinja template that wants roles to
    alternate, say) counts as not fitting; only the last one, the latest turn alone, may raise.
    """
    msgs = [dict(m) for m in messages]
    if not msgs:
        return []
    last = len(msgs) - 1
    for i in range(len(msgs)):
        system = [m for m in msgs[:i] if m.get("role") == "system"]
        candidate = system + msgs[i:]
        try:
            text = render([dict(m) for m in candidate])
        except TemplateError:
            if i == last:
                raise
            continue
        used = count_tokens(text)
        if image_tokens:
            used += image_tokens * sum(len(m.get("images") or []) for m in msgs[i:])
        if used <= num_ctx or i == last:
            return [dict(m) for m in candidate]
    return msgs

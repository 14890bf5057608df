"""Anthropic Messages requests → the native chat request, through :mod:`..shared.translate`.

* ``system`` (a string or text blocks, joined with a blank line) is the first system message.
* Each message is one native message: its text blocks joined with a blank line, its images
  (``base64`` sources only), its ``thinking`` and its ``tool_use`` blocks as tool calls.
  ``tool_result`` blocks in a user message become ``tool`` messages before it (their tool is the
  function of the ``tool_use`` block with that id); an error result (``is_error``) is given to
  the template as ``error: <content>``.
* ``max_tokens`` → ``num_predict``; ``temperature``, ``top_p``, ``top_k`` as they are (unset:
  the image's own); ``stop_sequences`` → ``stop`` (the engine reports which one ended the text).
* ``thinking``: ``enabled``/``adaptive`` → ``think: true``; ``disabled`` or unset → false (Claude
  thinks only when asked).
* ``tool_choice``: ``auto``; ``any`` (some call) and ``tool`` (that one) are sampled under a
  grammar that only lets the model write such a call; ``none`` gives the template no tools.
"""

from __future__ import annotations

from ocillm.server.apis.anthropic.protocol import (
    CountTokensRequest,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from ocillm.server.apis.shared import translate as shared
from ocillm.server.apis.shared.translate import NativeChat, Sampling, ToolChoice, Turns
from ocillm.server.errors import ApiError

#: Anthropic image media types.
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def image(block: ImageBlock) -> str:
    source = block.source
    if source.type != "base64":
        raise ApiError(
            400,
            "image source type 'url' is not supported: send the image as a base64 source",
        )
    if source.media_type not in MEDIA_TYPES:
        raise ApiError(400, f"image media_type must be one of {', '.join(MEDIA_TYPES)}")
    return shared.base64_image(source.data or "")


def _result_content(block: ToolResultBlock) -> tuple[str, list[str]]:
    content = block.content
    if content is None or isinstance(content, str):
        text, images = content or "", []
    else:
        text = "\n\n".join(b.text for b in content if isinstance(b, TextBlock))
        images = [image(b) for b in content if isinstance(b, ImageBlock)]
    return (f"error: {text}" if block.is_error else text), images


def _message(turns: Turns, msg: MessageParam) -> None:
    if isinstance(msg.content, str):
        turns.add(msg.role, msg.content)
        return
    texts: list[str] = []
    images: list[str] = []
    thinking: list[str] = []
    calls: list[tuple[str | None, str, object]] = []
    for block in msg.content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock):
            images.append(image(block))
        elif isinstance(block, ThinkingBlock):
            thinking.append(block.thinking)
        elif isinstance(block, ToolUseBlock):
            if msg.role != "assistant":
                raise ApiError(400, "tool_use blocks belong in assistant messages")
            calls.append((block.id, block.name, block.input))
        else:
            if msg.role != "user":
                raise ApiError(400, "tool_result blocks belong in user messages")
            text, result_images = _result_content(block)
            turns.tool_result(block.tool_use_id, text)
            if result_images:
                turns.messages[-1]["images"] = result_images
    if texts or images or calls or thinking:
        turns.add(
            msg.role,
            "\n\n".join(texts),
            images=images,
            thinking="\n\n".join(thinking) or None,
            tool_calls=calls,
        )


def _system(system: str | list[TextBlock] | None) -> str:
    if isinstance(system, list):
        return "\n\n".join(block.text for block in system)
    return system or ""


def _tool_choice(req: CountTokensRequest) -> ToolChoice | None:
    choice = req.tool_choice
    if choice is None or choice.type == "auto":
        return None
    if choice.type == "none":
        return "none"
    if choice.type == "any":
        return "required"
    if not choice.name:
        raise ApiError(400, "tool_choice.name: required when tool_choice.type is 'tool'")
    return choice.name


def _think(req: CountTokensRequest) -> bool:
    thinking = req.thinking
    if thinking is None or thinking.type == "disabled":
        return False
    if thinking.type == "enabled" and thinking.budget_tokens is None:
        raise ApiError(400, "thinking.budget_tokens: Field required")
    if isinstance(req, MessagesRequest) and (thinking.budget_tokens or 0) >= req.max_tokens:
        raise ApiError(400, "`max_tokens` must be greater than `thinking.budget_tokens`")
    return True


def chat_request(req: CountTokensRequest) -> NativeChat:
    """The native chat request a Messages (or count_tokens) request stands for."""
    if not req.messages:
        raise ApiError(400, "messages: at least one message is required")
    turns = Turns()
    if system := _system(req.system):
        turns.add("system", system)
    for msg in req.messages:
        _message(turns, msg)
    tools = [shared.function_tool(t.name, t.description, t.input_schema) for t in req.tools or []]
    sampling = Sampling()
    if isinstance(req, MessagesRequest):
        sampling = Sampling(
            temperature=req.temperature,
            top_p=req.top_p,
            top_k=req.top_k,
            max_tokens=req.max_tokens,
            stop=req.stop_sequences or None,
        )
    return shared.chat_request(
        model=req.model,
        turns=turns,
        sampling=sampling,
        tools=tools or None,
        tool_choice=_tool_choice(req),
        think=_think(req),
        stream=isinstance(req, MessagesRequest) and req.stream,
    )


def one_call_only(req: CountTokensRequest) -> bool:
    """``disable_parallel_tool_use``: keep the first call the model makes."""
    return bool(req.tool_choice and req.tool_choice.disable_parallel_tool_use)

"""``/api/generate`` and ``/api/chat``: check the request, get a runner, render, stream.

Both are async generators of Ollama's response chunks; errors raised before the first chunk get
their real status, later ones a final ``{"error": ...}`` line (see :mod:`.streaming`). The runner
slot is released before the final chunk is yielded, so a finished request never holds a slot
while its last line is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ocillm.runner import CompletionChunk, CompletionRequest, Runner
from ocillm.runner.vision import IMAGE_TAG
from ocillm.server.apis.shared.translate import base64_image
from ocillm.server.context import ServerContext, created_at, keep_alive
from ocillm.server.errors import ApiError
from ocillm.server.formats import grammar_for
from ocillm.server.models import ServedModel
from ocillm.server.options import Options
from ocillm.server.prompt import (
    chat_messages,
    chat_prompt,
    generate_prompt,
    render_chat,
    resolve_think,
    thinking_parser,
)
from ocillm.server.schemas.ollama import ChatRequest, GenerateRequest
from ocillm.server.streaming import Chunk
from ocillm.server.thinking import ThinkingParser
from ocillm.server.toolcalls import ToolCall, ToolCallParser, parser_for
from ocillm.server.toolchoice import forced_call_grammar
from ocillm.template import build_messages
from ocillm.template.ollama import tag_images

log = logging.getLogger(__name__)

NO_VISION = "this model is missing data required for image input"
#: Ollama's words for a prompt longer than the context when ``truncate`` is false.
INPUT_TOO_LONG = "the input length exceeds the context length"
#: Tokens a prompt can have beyond one per UTF-8 byte (BOS, EOS, a tokenizer's leading space):
#: a prompt with fewer bytes than the context minus this fits without being tokenized.
TOKEN_SLACK = 4
#: Characters per token no real text averages: a prompt longer than ``2 * WINDOW_CHARS *
#: num_ctx`` characters is taken not to fit, and only its first and last ``WINDOW_CHARS *
#: num_ctx`` characters are tokenized (truncation keeps tokens from nowhere else). So a 10 MB
#: prompt costs the runner a window's tokenization, not seconds of it.
WINDOW_CHARS = 8


def check_context(context: list[int] | None, vocab_size: int | None) -> None:
    """Token ids a client sends back must be the model's: llama.cpp aborts on any other."""
    if not context or not vocab_size:
        return  # the runner checks again against its own vocabulary
    for token in context:
        if not 0 <= token < vocab_size:
            raise ApiError(
                400,
                f"invalid context: token id {token} is out of range "
                f"(the vocabulary has {vocab_size} tokens)",
            )


def _window(prompt: str, num_ctx: int) -> str | None:
    """The head and tail of a prompt too long to tokenize whole; None when it is not."""
    span = WINDOW_CHARS * num_ctx
    if len(prompt) <= 2 * span:
        return None
    return prompt[:span] + prompt[-span:]


def _check_images(model: ServedModel, images: Sequence[str]) -> None:
    """Images need the model's projector, and must be base64."""
    if not images:
        return
    if not model.has_projector:
        raise ApiError(400, NO_VISION)
    for image in images:
        base64_image(image)


def _tag_prompt(prompt: str, images: Sequence[str], *, raw: bool) -> str:
    """A generate prompt with its images tagged as Ollama tags them: ``[img-N]`` before the text,
    or in place of its ``[img]``s. A raw prompt that places its own ``[img-N]`` keeps them."""
    if not images or (raw and IMAGE_TAG.search(prompt)):
        return prompt
    tagged, _ = tag_images([{"content": prompt, "images": list(images)}])
    return str(tagged[0]["content"])


async def _request(
    runner: Runner,
    opts: Options,
    prompt: str,
    images: Sequence[str],
    *,
    num_ctx: int,
    truncate: bool,
    grammar: str | None,
) -> tuple[CompletionRequest, list[int] | None]:
    """The completion request, fitted to the context (see :func:`_fitted`). A prompt with
    images is sent whole: cutting its tokens could cut a picture, so the runner refuses one
    that does not fit."""
    if images:
        return opts.completion(prompt=prompt, grammar=grammar, images=list(images)), None
    return await _fitted(runner, opts, prompt, num_ctx=num_ctx, truncate=truncate, grammar=grammar)


def _num_ctx(model: ServedModel, opts: Options) -> int:
    """The context the runner is loaded with (the scheduler caps it at the model's)."""
    num_ctx = opts.load().num_ctx
    return min(num_ctx, model.context_length) if model.context_length else num_ctx


def _counter(runner: Runner, num_ctx: int) -> Any:
    """Token counts for the fit checks; a text too short to overflow ``num_ctx`` is not sent to
    the runner (its byte count bounds its token count)."""

    async def count(text: str) -> int:
        bound = len(text.encode()) + TOKEN_SLACK
        if bound <= num_ctx:
            return bound
        if _window(text, num_ctx) is not None:
            return num_ctx + 1  # too long, and too long to tokenize for the count
        return await _tokens(runner, text)

    return count


async def _fitted(
    runner: Runner,
    opts: Options,
    prompt: str,
    *,
    num_ctx: int,
    truncate: bool,
    grammar: str | None,
) -> tuple[CompletionRequest, list[int] | None]:
    """The completion request for ``prompt``, cut to fit the context as Ollama's runner cuts it,
    and the tokens it was cut to (None when it fits).

    A prompt of ``num_ctx`` tokens or more is a 400 with ``truncate: false``. Otherwise its first
    ``num_keep`` tokens stay and tokens after them are dropped until half of the rest of the
    context is free for the answer: where Ollama's runner is after its first context shift.
    """
    if len(prompt.encode()) + TOKEN_SLACK < num_ctx:
        return opts.completion(prompt=prompt, grammar=grammar), None
    window = _window(prompt, num_ctx)
    tokens = await runner.tokenize(prompt if window is None else window)
    if window is None and len(tokens) < num_ctx:
        return opts.completion(prompt=prompt, grammar=grammar), None
    if not truncate:
        raise ApiError(400, INPUT_TOO_LONG)
    num_keep = int(opts["num_keep"])
    keep = min(num_keep if num_keep >= 0 else num_ctx, max(num_ctx - 2, 0))
    limit = keep + (num_ctx - keep) // 2
    cut = tokens[:keep] + tokens[len(tokens) - (limit - keep) :]
    log.warning(
        "truncating input prompt: limit=%d prompt=%d keep=%d new=%d",
        num_ctx,
        len(tokens),
        keep,
        len(cut),
    )
    return opts.completion(tokens=cut, grammar=grammar), cut


def _debug_info(prompt: str, images: int) -> dict[str, Any]:
    return {"rendered_template": prompt, "image_count": images}


def _metrics(final: CompletionChunk, start: int, load_ns: int) -> dict[str, Any]:
    return {
        "total_duration": time.perf_counter_ns() - start,
        "load_duration": load_ns,
        "prompt_eval_count": final.prompt_eval_count,
        "prompt_eval_duration": final.prompt_eval_duration,
        "eval_count": final.eval_count,
        "eval_duration": final.eval_duration,
    }


async def _unload(ctx: ServerContext, model: ServedModel) -> None:
    await ctx.scheduler.unload(model.key())
    await ctx.scheduler.unload(model.key(embedding=True))


def _split(parser: ThinkingParser | None, text: str) -> tuple[str, str]:
    return ("", text) if parser is None else parser.add(text)


def _generate_chunk(head: dict[str, Any], text: str, thought: str) -> Chunk:
    out: Chunk = {**head, "created_at": created_at(), "response": text, "done": False}
    if thought:
        out["thinking"] = thought
    return out


def _options(ctx: ServerContext, model: ServedModel, request_options: Any) -> Options:
    return Options.resolve(model.view.params, request_options, num_ctx=ctx.default_num_ctx)


async def _tokens(runner: Runner, text: str) -> int:
    return len(await runner.tokenize(text))


async def generate(ctx: ServerContext, req: GenerateRequest) -> AsyncIterator[Chunk]:
    start = time.perf_counter_ns()
    if req.raw and (req.template or req.system or req.context):
        raise ApiError(400, "raw mode does not support template, system, or context")
    model = await asyncio.to_thread(ctx.catalog.open, req.model)
    if "completion" not in model.capabilities:
        raise ApiError(400, f'"{req.model}" does not support generate')
    if req.suffix and "insert" not in model.capabilities:
        raise ApiError(400, f"{model.full_name} does not support insert")
    think = resolve_think(model, req.think)
    debug = req.debug_render_only and bool(req.prompt)
    images = list(req.images or [])
    _check_images(model, images)
    user_prompt = _tag_prompt(req.prompt, images, raw=req.raw)
    alive = keep_alive(req.keep_alive)
    head = {"model": req.model}
    if debug:
        # Ollama's _debug_render_only: the prompt the model would get, no model loaded (so a
        # `context` is not prepended: that needs the model's tokenizer).
        prompt = user_prompt
        if not req.raw:
            prompt = generate_prompt(
                model,
                prompt=user_prompt,
                system=req.system,
                template=req.template,
                suffix=req.suffix,
                think=think,
                with_model_messages=not req.context,
            )
        yield {
            **head,
            "created_at": created_at(),
            "response": "",
            "done": False,
            "_debug_info": _debug_info(prompt, len(images)),
        }
        return
    if not req.prompt and alive == 0:
        await _unload(ctx, model)
        yield {
            **head,
            "created_at": created_at(),
            "response": "",
            "done": True,
            "done_reason": "unload",
        }
        return
    opts = _options(ctx, model, req.options)
    check_context(req.context, model.info.vocab_size)
    grammar = grammar_for(req.format)
    load = model.load_request(opts.load(), keep_alive=alive, priority=req.priority)
    final = CompletionChunk(done=True, done_reason="stop")
    parts: list[str] = []
    context: list[int] | None = None
    logprobs = _Logprobs()
    asked = time.perf_counter_ns()
    async with ctx.scheduler.acquire(model.key(), load) as runner:
        load_ns = time.perf_counter_ns() - asked
        if not req.prompt:
            yield {
                **head,
                "created_at": created_at(),
                "response": "",
                "done": True,
                "done_reason": "load",
            }
            return
        num_ctx = _num_ctx(model, opts)
        truncate = req.truncate is not False
        if req.raw:
            prompt = user_prompt
        elif truncate and model.view.messages and not (req.suffix or req.template or req.context):
            # Ollama renders this case as a chat, so the image's MESSAGE turns are dropped,
            # oldest first, when the prompt does not fit.
            turns = build_messages(
                prompt=req.prompt,
                images=images,
                system=req.system or model.view.system,
                model_messages=model.view.messages,
            )
            prompt, images = await chat_prompt(
                model,
                turns,
                tools=None,
                think=think,
                num_ctx=num_ctx,
                truncate=True,
                count_tokens=_counter(runner, num_ctx),
            )
        else:
            prompt = generate_prompt(
                model,
                prompt=user_prompt,
                system=req.system,
                template=req.template,
                suffix=req.suffix,
                think=think,
                with_model_messages=not req.context,
            )
            if req.context:
                prompt = await runner.detokenize(list(req.context)) + prompt
        parser = None if req.raw else thinking_parser(model, think, prompt, req.template)
        completion, cut = await _request(
            runner, opts, prompt, images, num_ctx=num_ctx, truncate=truncate, grammar=grammar
        )
        completion = _per_request(completion, req.logprobs, req.top_logprobs, req.shift)
        meter = ctx.metrics.generation(model.display_name, start)
        async for chunk in runner.completion(completion):
            meter.saw(chunk)
            logprobs.add(chunk)
            if chunk.content:
                parts.append(chunk.content)
                thought, text = _split(parser, chunk.content)
                if thought or text:
                    yield logprobs.attach(_generate_chunk(head, text, thought))
            if chunk.done:
                final = chunk
        if parser is not None:
            thought, text = parser.finish()
            if thought or text:
                yield logprobs.attach(_generate_chunk(head, text, thought))
        if not req.raw:
            # A cut prompt's context is what the model saw, not the megabytes it was cut from.
            seen = prompt if cut is None else await runner.detokenize(cut)
            seen = IMAGE_TAG.sub("", seen)  # the pictures are not tokens to send back
            context = await runner.tokenize(seen + "".join(parts), add_special=False)
    out: Chunk = {
        **head,
        "created_at": created_at(),
        "response": "",
        "done": True,
        "done_reason": final.done_reason or "stop",
    }
    if context is not None:
        out["context"] = context
    out.update(_metrics(final, start, load_ns))
    yield logprobs.attach(out)


def _per_request(
    completion: CompletionRequest, logprobs: bool | None, top: int | None, shift: bool | None
) -> CompletionRequest:
    """The request's own generation switches, beside the options: logprobs (top_logprobs
    counts only with logprobs, as in Ollama) and whether a full context shifts."""
    wanted = bool(logprobs)
    return completion.model_copy(
        update={
            "logprobs": wanted,
            "top_logprobs": (top or 0) if wanted else 0,
            "shift": shift is not False,
        }
    )


class _Logprobs:
    """Token log probabilities from the runner, handed to the next chunk the client gets (text
    held back by a thinking or tool-call parser takes its tokens' entries along later)."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []

    def add(self, chunk: CompletionChunk) -> None:
        for entry in chunk.logprobs or ():
            item = entry.model_dump()
            if not item["top_logprobs"]:
                del item["top_logprobs"]
            self.pending.append(item)

    def attach(self, out: Chunk) -> Chunk:
        if self.pending:
            out["logprobs"], self.pending = self.pending, []
        return out


def _merge_logprobs(merged: Chunk, chunks: list[Chunk]) -> None:
    entries = [e for c in chunks for e in c.get("logprobs") or []]
    if entries:
        merged["logprobs"] = entries


def merge_generate(chunks: list[Chunk]) -> Chunk:
    """``stream: false``: one object, the text of every chunk joined, the final metrics."""
    merged = dict(chunks[-1])
    merged["response"] = "".join(str(c.get("response") or "") for c in chunks)
    _merge_logprobs(merged, chunks)
    thinking = "".join(str(c.get("thinking") or "") for c in chunks)
    if thinking:
        merged["thinking"] = thinking
    return merged


def _message(
    content: str, thinking: str = "", calls: list[ToolCall] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = [call.native() for call in calls]
    return message


def _chat_chunk(
    head: dict[str, Any], text: str, thought: str, calls: list[ToolCall] | None = None
) -> Chunk:
    return {
        **head,
        "created_at": created_at(),
        "message": _message(text, thought, calls),
        "done": False,
    }


def _calls(tools: ToolCallParser | None, text: str) -> tuple[list[ToolCall], str]:
    return ([], text) if tools is None or not text else tools.add(text)


async def chat(
    ctx: ServerContext,
    req: ChatRequest,
    *,
    require_tools: Sequence[str] = (),
    report_stop: bool = False,
) -> AsyncIterator[Chunk]:
    """``/api/chat``. The other APIs' callers may also require a call of one of
    ``require_tools`` (sampled under :func:`.toolchoice.forced_call_grammar`), and have the final
    chunk name the ``stop_sequence`` that ended the answer (``report_stop``)."""
    start = time.perf_counter_ns()
    model = await asyncio.to_thread(ctx.catalog.open, req.model)
    if "completion" not in model.capabilities:
        raise ApiError(400, f'"{req.model}" does not support chat')
    if req.tools and "tools" not in model.capabilities:
        raise ApiError(400, f"{model.full_name} does not support tools")
    think = resolve_think(model, req.think)
    debug = req.debug_render_only and bool(req.messages)
    _check_images(model, [image for m in req.messages for image in m.images or []])
    alive = keep_alive(req.keep_alive)
    head = {"model": req.model}
    if not req.messages and alive == 0:
        await _unload(ctx, model)
        yield {
            **head,
            "created_at": created_at(),
            "message": _message(""),
            "done": True,
            "done_reason": "unload",
        }
        return
    opts = _options(ctx, model, req.options)
    load = model.load_request(opts.load(), keep_alive=alive, priority=req.priority)
    tools = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
    grammar = (
        forced_call_grammar(model.template(), tools or [], require_tools)
        if require_tools
        else grammar_for(req.format)
    )
    messages = chat_messages(model, [m.model_dump(exclude_none=True) for m in req.messages])
    num_ctx = _num_ctx(model, opts)
    truncate = req.truncate is not False
    if debug:
        # Rendered whole: dropping old turns needs the model's tokenizer, and nothing loads here.
        prompt = render_chat(model, messages, tools=tools, think=think)
        yield {
            **head,
            "created_at": created_at(),
            "message": {"role": "", "content": ""},
            "done": False,
            "_debug_info": _debug_info(prompt, sum(len(m.images or []) for m in req.messages)),
        }
        return
    final = CompletionChunk(done=True, done_reason="stop")
    logprobs = _Logprobs()
    asked = time.perf_counter_ns()
    async with ctx.scheduler.acquire(model.key(), load) as runner:
        load_ns = time.perf_counter_ns() - asked
        if not req.messages:
            yield {
                **head,
                "created_at": created_at(),
                "message": _message(""),
                "done": True,
                "done_reason": "load",
            }
            return
        prompt, images = await chat_prompt(
            model,
            messages,
            tools=tools,
            think=think,
            num_ctx=num_ctx,
            truncate=truncate,
            count_tokens=_counter(runner, num_ctx),
        )
        parser = thinking_parser(model, think, prompt)
        tool_parser = parser_for(model.template(), tools)
        completion, _ = await _request(
            runner, opts, prompt, images, num_ctx=num_ctx, truncate=truncate, grammar=grammar
        )
        completion = _per_request(completion, req.logprobs, req.top_logprobs, req.shift)
        meter = ctx.metrics.generation(model.display_name, start)
        async for chunk in runner.completion(completion):
            meter.saw(chunk)
            logprobs.add(chunk)
            if chunk.content:
                thought, text = _split(parser, chunk.content)
                calls, text = _calls(tool_parser, text)
                if thought or text or calls:
                    yield logprobs.attach(_chat_chunk(head, text, thought, calls))
            if chunk.done:
                final = chunk
        if parser is not None:
            thought, text = parser.finish()
            calls, text = _calls(tool_parser, text)
            if thought or text or calls:
                yield logprobs.attach(_chat_chunk(head, text, thought, calls))
        if tool_parser is not None and (held := tool_parser.finish()):
            yield logprobs.attach(_chat_chunk(head, held, ""))
    out: Chunk = {
        **head,
        "created_at": created_at(),
        "message": _message(""),
        "done": True,
        "done_reason": final.done_reason or "stop",
    }
    if report_stop and final.stop_sequence is not None:
        out["stop_sequence"] = final.stop_sequence
    out.update(_metrics(final, start, load_ns))
    yield logprobs.attach(out)


def merge_chat(chunks: list[Chunk]) -> Chunk:
    """``stream: false``: the content and thinking joined, the tool calls of every chunk."""
    merged = dict(chunks[-1])
    message = dict(merged.get("message") or _message(""))
    messages = [c.get("message") or {} for c in chunks]
    message["content"] = "".join(str(m.get("content") or "") for m in messages)
    thinking = "".join(str(m.get("thinking") or "") for m in messages)
    if thinking:
        message["thinking"] = thinking
    calls = [call for m in messages for call in m.get("tool_calls") or []]
    if calls:
        message["tool_calls"] = calls
    merged["message"] = message
    _merge_logprobs(merged, chunks)
    return merged

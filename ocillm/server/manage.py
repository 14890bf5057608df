"""The model-management routes' work: tags, show, ps, copy, delete, blobs, create, pull, push.

The store, the builder and the registry library do the work; this module turns requests into
their calls and their progress events into Ollama's progress stream. Library calls are
synchronous, so they run in worker threads; events cross back to the event loop through a queue.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from ocillm.build.builder import compile_modelfile
from ocillm.errors import DigestMismatch, NotFound, OcillmError, RegistryError, TemplateError
from ocillm.image import open_image
from ocillm.image.describe import (
    capabilities,
    details,
    format_parameters,
    modelfile_text,
    show,
)
from ocillm.modelfile import Message, Modelfile
from ocillm.modelfile.paths import blob_digest as stored_blob_digest
from ocillm.modelfile.paths import looks_like_path
from ocillm.oci.reference import Reference
from ocillm.progress import Event, Reporter
from ocillm.server.context import ServerContext
from ocillm.server.errors import ApiError, validation_error
from ocillm.server.models import reference_or_400
from ocillm.server.options import check_options
from ocillm.server.schemas.ollama import (
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    PullRequest,
    PushRequest,
    ShowRequest,
)
from ocillm.server.streaming import Chunk
from ocillm.template import parse_template

# Lower-case hex only: the store names blobs by it, and an upper-case twin would be a second
# name for the same bytes.
_BLOB_DIGEST = re.compile(r"^sha256[:-][0-9a-f]{64}$")
#: What ``expires_at`` says for a model kept forever (Ollama's clients print "Forever").
FOREVER = timedelta(days=365 * 290)


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


# --- progress from worker threads ---------------------------------------------------------------


async def events_from(work: Callable[[Reporter], object]) -> AsyncIterator[Chunk]:
    """Run ``work(report)`` in a thread; yield each event it reports as Ollama's progress JSON."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def report(event: Event) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("event", event.wire()))

    def run() -> None:
        try:
            work(report)
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        else:
            loop.call_soon_threadsafe(queue.put_nowait, ("done", None))

    worker = loop.run_in_executor(None, run)
    try:
        while True:
            kind, value = await queue.get()
            if kind == "event":
                yield value
            elif kind == "error":
                if isinstance(value, RegistryError):
                    raise ApiError(_registry_status(value), str(value)) from value
                raise value
            else:
                return
    finally:
        if worker.done():
            worker.result()


def _registry_status(err: RegistryError) -> int:
    """The status a registry's failure is answered with: the client's mistake (a name the
    registry does not have, no access) as a 4xx, the registry's own failure as 502."""
    if err.status in (404, 429):
        return err.status
    if err.status in (401, 403):
        return 403  # not 401: that is this server's own API key
    if err.status is not None and 400 <= err.status < 500:
        return 400
    return 502


# --- listing ------------------------------------------------------------------------------------


def tags(ctx: ServerContext) -> dict[str, Any]:
    models = []
    for record in sorted(ctx.store.images(), key=lambda r: r.modified, reverse=True):
        try:
            view = open_image(ctx.store, record.reference)
            info = ctx.catalog.info(view.model_path)
        except OcillmError:
            continue  # another tool's entry, not a model image
        name = ctx.store.display(record.reference)
        models.append(
            {
                "name": name,
                "model": name,
                "modified_at": _iso(record.modified),
                "size": view.size,
                "digest": _hex(record.descriptor.digest),
                "details": details(view),
                "capabilities": capabilities(view, info),
            }
        )
    return {"models": models}


def show_model(ctx: ServerContext, req: ShowRequest) -> dict[str, Any]:
    if not req.model.strip():
        raise ApiError(400, "model is required")
    model = ctx.catalog.open(req.model)
    data = show(model.view, verbose=req.verbose)
    # The request's template, system and options replace the image's in the answer, the
    # Modelfile included, as Ollama shows them (a template is parsed first, as Ollama does).
    overrides: dict[str, Any] = {}
    if req.template:
        try:
            parse_template(req.template)
        except TemplateError as err:
            raise ApiError(400, f"template error: {err}") from None
        data["template"] = overrides["template"] = req.template
    if req.system:
        data["system"] = overrides["system"] = req.system
    if req.options:
        params = {**model.view.params, **check_options(req.options)}
        data["parameters"] = format_parameters(params)
        overrides["parameters"] = params
    if overrides:
        data["modelfile"] = modelfile_text(model.view, overrides)
    return data


def ps(ctx: ServerContext) -> dict[str, Any]:
    rows = []
    far = datetime.now(timezone.utc) + FOREVER
    for m in ctx.scheduler.ps():
        name = m.name
        rows.append(
            {
                "name": name,
                "model": name,
                "size": m.size,
                "digest": _hex(m.digest),
                "details": ctx.catalog.details_of(m.digest),
                "expires_at": _iso(m.expires_at or far),
                "size_vram": m.size_vram,
                "context_length": m.context_length,
                "processor": m.processor,
                "pid": m.pid,
            }
        )
    return {"models": rows}


# --- copy, delete -------------------------------------------------------------------------------


def copy(ctx: ServerContext, req: CopyRequest) -> None:
    source = reference_or_400(ctx.store, req.source, f'source "{req.source}" is invalid')
    dest = reference_or_400(
        ctx.store, req.destination, f'destination "{req.destination}" is invalid'
    )
    try:
        desc = ctx.store.resolve(source)
    except NotFound:
        raise ApiError(404, f'model "{req.source}" not found') from None
    ctx.store.tag(dest, desc)


async def delete(ctx: ServerContext, req: DeleteRequest) -> None:
    ref = reference_or_400(ctx.store, req.model, f'name "{req.model}" is invalid')
    try:
        model = await asyncio.to_thread(ctx.catalog.open, req.model)
    except ApiError:
        model = None
    try:
        await asyncio.to_thread(ctx.store.remove, ref)
    except NotFound:
        raise ApiError(404, f"model '{req.model}' not found") from None
    if model is not None and not _still_tagged(ctx, model.view.digest):
        await ctx.scheduler.unload(model.key())
        await ctx.scheduler.unload(model.key(embedding=True))


def _still_tagged(ctx: ServerContext, digest: str) -> bool:
    return any(r.descriptor.digest == digest for r in ctx.store.images())


# --- blobs --------------------------------------------------------------------------------------


def blob_digest(text: str) -> str:
    if not _BLOB_DIGEST.match(text):
        raise ApiError(400, "invalid digest format")
    return "sha256:" + text[7:].lower()


def has_blob(ctx: ServerContext, text: str) -> bool:
    return ctx.store.blobs.has(blob_digest(text))


async def put_blob(ctx: ServerContext, text: str, body: AsyncIterator[bytes]) -> bool:
    """Store the request body as ``digest``, verified before it is visible. True if it is new."""
    digest = blob_digest(text)
    if ctx.store.blobs.has(digest):
        return False
    loop = asyncio.get_running_loop()
    it = aiter(body)

    async def next_chunk() -> bytes:
        return await anext(it)

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                yield asyncio.run_coroutine_threadsafe(next_chunk(), loop).result()
            except StopAsyncIteration:
                return

    try:
        await asyncio.to_thread(ctx.store.blobs.put_stream, chunks(), expected=digest)
    except DigestMismatch as err:
        raise ApiError(
            400, f'digest mismatch, expected "{err.expected}", got "{err.actual}"'
        ) from None
    return True


# --- create -------------------------------------------------------------------------------------


def _relative(name: str) -> None:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise ApiError(400, "file path must be relative")


def _blob_path(ctx: ServerContext, digest: str) -> str:
    try:
        d = blob_digest(digest)
    except ApiError:
        raise ApiError(400, "invalid digest format") from None
    if not ctx.store.blobs.has(d):
        raise ApiError(400, f'blob "{d}" not found: upload it first with POST /api/blobs/{d}')
    return str(ctx.store.blobs.path(d))


def _from_values(ctx: ServerContext, value: str) -> list[str]:
    """What the builder gets for a request's ``from``: a reference as it is, a store blob's own
    path, or (only under ``OCILLM_CREATE_PATHS``) the real paths of host files.

    Over the API nothing else on the host may be read, and a refusal must read the same
    whether or not the path exists, so paths are refused before anything looks at them.
    """
    digest = stored_blob_digest(value)
    if digest is None and _BLOB_DIGEST.match(value):
        digest = value
    if digest is not None:
        return [_blob_path(ctx, digest)]
    if looks_like_path(value) or "\\" in value:
        return _confined(ctx, value)
    return [value]


def _confined(ctx: ServerContext, value: str) -> list[str]:
    """``value`` resolved (symlinks too) inside one of ``OCILLM_CREATE_PATHS``, or a 400."""
    roots = ctx.settings.create_paths
    if not roots:
        raise ApiError(
            400,
            f'from "{value}" names a file on the server: over the API, upload it with '
            'POST /api/blobs and name it in "files", or set OCILLM_CREATE_PATHS',
        )
    outside = ApiError(
        400,
        f'from "{value}": the path is outside OCILLM_CREATE_PATHS '
        f"({', '.join(str(r) for r in roots)})",
    )
    real_roots = [Path(os.path.realpath(r)) for r in roots]

    def inside(path: Path) -> Path:
        real = Path(os.path.realpath(path))
        if not any(real.is_relative_to(r) for r in real_roots):
            raise outside
        return real

    if value.startswith("~"):  # another user's home is outside by definition
        raise outside
    # A relative path is relative to the first root (the builder's own rule is the Modelfile's
    # directory, which an API request does not have).
    real = inside(Path(value) if os.path.isabs(value) else real_roots[0] / value)
    if not real.is_dir():
        return [str(real)]
    # The builder takes every .gguf in a directory; each must be inside too (no link out).
    files = sorted(p for p in real.iterdir() if p.suffix == ".gguf" and p.is_file())
    return [str(inside(f)) for f in files] or [str(real)]


def modelfile_of(ctx: ServerContext, req: CreateRequest) -> Modelfile:
    """The JSON create request as the Modelfile it stands for (files are store blobs)."""
    if req.from_:
        froms = _from_values(ctx, req.from_)
    elif req.files:
        froms = []
        for name, digest in req.files.items():
            _relative(name)
            froms.append(_blob_path(ctx, digest))
    else:
        raise ApiError(400, "neither 'from' or 'files' was specified")
    adapters = []
    if req.adapters:
        if len(req.adapters) > 1:
            raise ApiError(400, "only one adapter is currently supported")
        for name, digest in req.adapters.items():
            _relative(name)
            adapters.append(_blob_path(ctx, digest))
    licenses = [req.license] if isinstance(req.license, str) else list(req.license or [])
    params = {k: v for k, v in (req.parameters or {}).items() if v is not None}
    params.update(check_options(params))
    messages = []
    for m in req.messages or []:
        if m.role not in ("system", "user", "assistant"):
            raise ApiError(
                400, f"invalid message role {m.role!r}: expected system, user or assistant"
            )
        messages.append(Message(role=m.role, content=m.content))
    try:
        return Modelfile(
            froms=froms,
            parameters=params,
            template=req.template,
            system=req.system,
            adapters=adapters,
            licenses=licenses,
            messages=messages,
            requires=req.requires,
            renderer=req.renderer,
            parser=req.parser,
        )
    except ValidationError as err:
        raise validation_error(err) from None
    except ValueError as err:
        raise ApiError(400, str(err)) from None


def create(ctx: ServerContext, req: CreateRequest) -> AsyncIterator[Chunk]:
    if not req.model.strip():
        raise ApiError(400, "model is required")
    ref = reference_or_400(ctx.store, req.model, "invalid model name")
    modelfile = modelfile_of(ctx, req)
    quantize = req.quantize or req.quantization

    def work(report: Reporter) -> None:
        def pull_base(base: Reference) -> None:
            from ocillm.registry import TransferOptions, pull

            options = TransferOptions.from_settings(ctx.settings)
            pull(base, ctx.store, options=options, report=report)

        # An empty directory as the builder's base: a reference is never found as a file
        # beside it (every path the request may use is already absolute).
        with tempfile.TemporaryDirectory(prefix="ocillm-create-") as nowhere:
            compile_modelfile(
                modelfile,
                [ref],
                store=ctx.store,
                context=Path(nowhere),
                filename="create request",
                quantize=quantize,
                report=report,
                pull_base=pull_base,
                source_date_epoch=ctx.settings.source_date_epoch,
            )

    return events_from(work)


# --- registry -----------------------------------------------------------------------------------


def pull(ctx: ServerContext, req: PullRequest) -> AsyncIterator[Chunk]:
    from ocillm.registry import TransferOptions
    from ocillm.registry import pull as pull_image

    ref = reference_or_400(ctx.store, req.model, "invalid model name")
    options = TransferOptions.from_settings(ctx.settings, plain_http=req.insecure)
    return events_from(lambda report: pull_image(ref, ctx.store, options=options, report=report))


def push(ctx: ServerContext, req: PushRequest) -> AsyncIterator[Chunk]:
    from ocillm.registry import TransferOptions
    from ocillm.registry import push as push_image

    ref = reference_or_400(ctx.store, req.model, "invalid model name")
    try:
        ctx.store.resolve(ref)
    except NotFound:
        raise ApiError(404, f"model '{req.model}' not found") from None
    options = TransferOptions.from_settings(ctx.settings, plain_http=req.insecure)
    return events_from(lambda report: push_image(ref, ctx.store, options=options, report=report))

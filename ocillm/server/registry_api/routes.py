"""``/v2/``: thin routes that parse the URL, check the key, and call the view, uploads or cache.

One catch-all route, because repository names contain ``/``; it is kept out of the OpenAPI
document (``include_in_schema=False``), which describes the Ollama API only.
"""

from __future__ import annotations

import re
import urllib.parse

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, Response

from ocillm.config import Settings
from ocillm.errors import OcillmError
from ocillm.oci import mediatypes as mt
from ocillm.oci.digest import is_digest
from ocillm.oci.models import Index
from ocillm.oci.reference import Reference
from ocillm.registry.options import TransferOptions
from ocillm.server.registry_api.names import to_reference
from ocillm.server.registry_api.pullthrough import PullThrough
from ocillm.server.registry_api.uploads import Uploads, range_header
from ocillm.server.registry_api.view import StoredManifest, StoreView, blob_unknown, page
from ocillm.server.registry_api.wire import (
    API_VERSION,
    MANIFEST_LIMIT,
    RegistryApiError,
    accepts,
    authorized,
    unauthorized,
)
from ocillm.store import Store

_ROUTE = re.compile(
    r"^(?P<name>.+?)/(?:"
    r"manifests/(?P<manifest>[^/]+)"
    r"|blobs/uploads/?(?P<upload>[^/]*)"
    r"|blobs/(?P<blob>[^/]+)"
    r"|tags/list"
    r"|referrers/(?P<referrer>[^/]+)"
    r")$"
)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
WRITE_CHUNK = 1 << 20


class BlobResponse(FileResponse):
    chunk_size = 1 << 20  # 64 KiB (Starlette's default) costs a thread hop per 64 KiB


class RegistryApi:
    """What the routes share: the store's view, upload sessions, the optional upstream cache."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.view = StoreView(store)
        self.uploads = Uploads(store)
        self.cache = (
            PullThrough(settings.mirror_of, store, TransferOptions.from_settings(settings))
            if settings.mirror_of
            else None
        )

    @classmethod
    def of(cls, request: Request) -> RegistryApi:
        state = request.app.state
        api: RegistryApi | None = getattr(state, "registry_api", None)
        if api is None:
            ctx = state.ctx
            api = state.registry_api = cls(ctx.settings, ctx.store)
        return api

    def reference(self, name: str) -> Reference:
        try:
            return to_reference(
                name,
                default_registry=self.store.default_registry,
                upstream=self.cache.host if self.cache else None,
                upstream_prefix=self.cache.mirror.prefix if self.cache else "",
            )
        except OcillmError as e:
            raise RegistryApiError(
                400, "NAME_INVALID", f"invalid repository name {name!r}: {e}"
            ) from None

    def writable(self) -> None:
        if not self.settings.registry_write or getattr(self.settings, "read_only", False):
            raise RegistryApiError(
                405,
                "UNSUPPORTED",
                "this registry is read-only: start `ocillm serve` with OCILLM_REGISTRY_WRITE=1 "
                "to accept pushes",
            )

    # -- the work, run in a thread --------------------------------------------------------------

    def manifest(self, ref: Reference, target: str) -> StoredManifest:
        if self.cache is not None and self.cache.covers(ref):
            if is_digest(target) and self.store.blobs.has(target):
                return self.view.manifest(ref, target)
            try:
                return self.cache.manifest(ref, target)
            except RegistryApiError as e:
                if e.status == 404 or self.view.tagged(ref, target) is None:
                    raise
                # the upstream is unreachable: what the store has still answers
        return self.view.manifest(ref, target)

    def blob(self, ref: Reference, digest: str) -> str:
        path = self.view.blob_path(digest)
        if path is None and self.cache is not None and self.cache.covers(ref):
            self.cache.blob(ref, digest)
            path = self.view.blob_path(digest)
        if path is None:
            raise blob_unknown(digest)
        return str(path)


registry_router = APIRouter(include_in_schema=False)


def _headers(**extra: str) -> dict[str, str]:
    return {API_VERSION[0]: API_VERSION[1], **extra}


@registry_router.api_route("/v2", methods=["GET", "HEAD"])
@registry_router.api_route("/v2/", methods=["GET", "HEAD"])
async def version_check(request: Request) -> Response:
    api = RegistryApi.of(request)
    if not authorized(request.headers.get("authorization", ""), api.settings.api_key):
        return unauthorized().response(head=request.method == "HEAD")
    return JSONResponse({}, headers=_headers())


@registry_router.api_route("/v2/{path:path}", methods=METHODS)
async def dispatch(request: Request, path: str) -> Response:
    api = RegistryApi.of(request)
    head = request.method == "HEAD"
    try:
        if not authorized(request.headers.get("authorization", ""), api.settings.api_key):
            raise unauthorized()
        return await _dispatch(api, request, path)
    except RegistryApiError as e:
        return e.response(head=head)
    except OcillmError as e:
        status = getattr(e, "http_status", 500)
        return RegistryApiError(status, "UNKNOWN", str(e)).response(head=head)


async def _dispatch(api: RegistryApi, request: Request, path: str) -> Response:
    method = request.method
    if path.strip("/") == "_catalog":
        if method not in ("GET", "HEAD"):
            raise _unsupported(method)
        n, last = _paging(request)
        names, more = page(await run_in_threadpool(api.view.repositories), n, last)
        headers = _headers()
        if more:
            headers["Link"] = _next_link("/v2/_catalog", n, names[-1])
        return JSONResponse({"repositories": names}, headers=headers)
    match = _ROUTE.match(path)
    if match is None:
        raise RegistryApiError(404, "NAME_UNKNOWN", f"no such endpoint: /v2/{path}")
    ref = api.reference(match["name"])
    name = match["name"]
    if match["manifest"] is not None:
        return await _manifest(api, request, ref, name, match["manifest"])
    if match["upload"] is not None:
        return await _upload(api, request, ref, name, match["upload"])
    if match["blob"] is not None:
        return await _blob(api, request, ref, match["blob"])
    if match["referrer"] is not None:
        if method not in ("GET", "HEAD"):
            raise _unsupported(method)
        wanted = request.query_params.get("artifactType") or None
        found = await run_in_threadpool(api.view.referrers, match["referrer"], wanted)
        index = Index(manifests=found)
        headers = _headers(**({"OCI-Filters-Applied": "artifactType"} if wanted else {}))
        return JSONResponse(index.wire(), headers=headers, media_type=mt.OCI_INDEX)
    # tags/list
    if method not in ("GET", "HEAD"):
        raise _unsupported(method)
    tags = await run_in_threadpool(api.view.tags, ref)
    if not tags:
        raise RegistryApiError(404, "NAME_UNKNOWN", f"repository name not known: {ref.name}")
    n, last = _paging(request)
    shown, more = page(tags, n, last)
    headers = _headers()
    if more:
        headers["Link"] = _next_link(f"/v2/{name}/tags/list", n, shown[-1])
    return JSONResponse({"name": name, "tags": shown}, headers=headers)


async def _manifest(
    api: RegistryApi, request: Request, ref: Reference, name: str, target: str
) -> Response:
    if request.method == "PUT":
        api.writable()
        data = await _read_limited(request, MANIFEST_LIMIT)
        content_type = request.headers.get("content-type", "")
        digest = await run_in_threadpool(api.uploads.put_manifest, ref, target, data, content_type)
        headers = _headers(
            Location=f"/v2/{name}/manifests/{digest}", **{"Docker-Content-Digest": digest}
        )
        if b'"subject"' in data:
            import json

            subject = json.loads(data).get("subject") or {}
            if isinstance(subject, dict) and subject.get("digest"):
                headers["OCI-Subject"] = str(subject["digest"])
        return Response(status_code=201, headers=headers)
    if request.method not in ("GET", "HEAD"):
        raise _unsupported(request.method)
    stored = await run_in_threadpool(api.manifest, ref, target)
    if not accepts(request.headers.getlist("accept"), stored.media_type):
        raise RegistryApiError(
            404,
            "MANIFEST_UNKNOWN",
            f"manifest {ref.name}:{target} is {stored.media_type}, which the Accept header "
            "does not list",
        )
    headers = _headers(
        **{"Docker-Content-Digest": stored.digest, "ETag": f'"{stored.digest}"'},
    )
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(stored.data))
        return Response(status_code=200, headers=headers, media_type=stored.media_type)
    return Response(stored.data, headers=headers, media_type=stored.media_type)


async def _blob(api: RegistryApi, request: Request, ref: Reference, digest: str) -> Response:
    if request.method not in ("GET", "HEAD"):
        raise _unsupported(request.method)
    path = await run_in_threadpool(api.blob, ref, digest)
    headers = _headers(**{"Docker-Content-Digest": digest, "ETag": f'"{digest}"'})
    if request.method == "GET" and "range" not in request.headers:
        # Ollama's client asks once, without a Range, for the blob's "direct URL" and reads it
        # from Location (it expects registry.ollama.ai's CDN redirect); a plain 200 without
        # one fails with "no Location header". The body is the blob itself, as for any client.
        headers["Location"] = str(request.url)
    return BlobResponse(path, headers=headers, media_type="application/octet-stream")


async def _upload(
    api: RegistryApi, request: Request, ref: Reference, name: str, session_id: str
) -> Response:
    api.writable()
    method = request.method
    base = f"/v2/{name}/blobs/uploads/"
    if not session_id:
        if method != "POST":
            raise _unsupported(method)
        mount = request.query_params.get("mount")
        if mount and api.uploads.mount(mount):
            return _created(name, mount)
        session = await run_in_threadpool(api.uploads.start, name)
        digest = request.query_params.get("digest")
        if digest:  # a monolithic upload: POST with the whole body
            await _append(api, session, request, None)
            committed = await run_in_threadpool(api.uploads.finish, session, digest)
            return _created(name, committed)
        return Response(
            status_code=202,
            headers=_headers(
                Location=base + session.id, Range="0-0", **{"Docker-Upload-UUID": session.id}
            ),
        )
    session = api.uploads.get(session_id, name)
    if method == "GET":
        return Response(
            status_code=204,
            headers=_headers(Location=base + session.id, Range=range_header(session)),
        )
    if method == "DELETE":
        await run_in_threadpool(api.uploads.cancel, session)
        return Response(status_code=204, headers=_headers())
    if method == "PATCH":
        await _append(api, session, request, _range_start(request))
        return Response(
            status_code=202,
            headers=_headers(
                Location=base + session.id,
                Range=range_header(session),
                **{"Docker-Upload-UUID": session.id},
            ),
        )
    if method == "PUT":
        digest = request.query_params.get("digest", "")
        await _append(api, session, request, None)
        committed = await run_in_threadpool(api.uploads.finish, session, digest)
        return _created(name, committed)
    raise _unsupported(method)


async def _append(api: RegistryApi, session: object, request: Request, start: int | None) -> None:
    """Stream the request body into the session in 1 MiB writes, off the event loop."""
    from ocillm.server.registry_api.uploads import Session

    assert isinstance(session, Session)
    buffered: list[bytes] = []
    size = 0
    first = True
    async for chunk in request.stream():
        buffered.append(chunk)
        size += len(chunk)
        if size >= WRITE_CHUNK:
            await run_in_threadpool(api.uploads.append, session, buffered, start if first else None)
            first, buffered, size = False, [], 0
    if buffered or first:
        await run_in_threadpool(api.uploads.append, session, buffered, start if first else None)


def _created(name: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers=_headers(
            Location=f"/v2/{name}/blobs/{digest}", **{"Docker-Content-Digest": digest}
        ),
    )


def _range_start(request: Request) -> int | None:
    value = request.headers.get("content-range", "").strip()
    if not value:
        return None
    match = re.match(r"^(?:bytes[ =])?(\d+)-(\d+)?", value)
    if not match:
        raise RegistryApiError(416, "BLOB_UPLOAD_INVALID", f"bad Content-Range {value!r}")
    return int(match.group(1))


async def _read_limited(request: Request, limit: int) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise RegistryApiError(413, "SIZE_INVALID", f"manifest larger than {limit} bytes")
    return bytes(data)


def _paging(request: Request) -> tuple[int | None, str | None]:
    raw = request.query_params.get("n")
    n: int | None = None
    if raw:
        if not raw.isdigit():
            raise RegistryApiError(400, "PAGINATION_NUMBER_INVALID", f"invalid n={raw!r}")
        n = int(raw)
    return n, request.query_params.get("last") or None


def _next_link(path: str, n: int | None, last: str) -> str:
    query = urllib.parse.urlencode({"n": n, "last": last} if n is not None else {"last": last})
    return f'<{path}?{query}>; rel="next"'


def _unsupported(method: str) -> RegistryApiError:
    return RegistryApiError(405, "UNSUPPORTED", f"{method} is not supported here")

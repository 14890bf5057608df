"""Each model of a deployment: its reference pinned by digest, and the memory it needs.

The digest comes from the local store (a tag is resolved there; ``REF@sha256:…`` is taken as
given). The memory is the scheduler's own estimate (:func:`ocillm.gpu.estimate.estimate`, the
same function ``serve`` places models with) for the context length and slots the pod will run
with, so the request matches what the daemon will try to allocate.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocillm.errors import NotFound, OcillmError, UsageError
from ocillm.gpu.estimate import EstimateOptions, ModelShape, ProjectorShape, estimate
from ocillm.image.content import Role
from ocillm.image.modelcar import modelpack_entry
from ocillm.oci import mediatypes as mt
from ocillm.oci.models import Index
from ocillm.oci.reference import Reference
from ocillm.store import Store

#: Ollama's default ``num_batch``, used when the image sets none.
DEFAULT_NUM_BATCH = 512


@dataclass(frozen=True)
class ModelSpec:
    """One model as the manifests use it."""

    reference: Reference  # as given (the tag, if any, is the name ``serve`` answers to)
    digest: str
    memory: int | None  # bytes the estimate gives; None when the image is not in the store
    size: int | None  # bytes of the image's blobs (config and layers); None when not in the store
    modelcar: bool | None  # an index with a runnable image; None when not in the store

    @property
    def pinned(self) -> str:
        """``registry/repository@sha256:…``: what a kubelet and ``ocillm pull`` fetch."""
        return f"{self.reference.name}@{self.digest}"


def resolve_model(
    store: Store, text: str, *, num_ctx: int, num_parallel: int, need_modelcar: bool
) -> ModelSpec:
    """Pin ``text`` and size it; raises a one-line error when it cannot be pinned or mounted."""
    ref = store.parse(text)
    try:
        desc = store.resolve(ref)
    except NotFound:
        if ref.digest is None:
            raise UsageError(
                f"{text}: not in the local store, so its digest is unknown; "
                f"pull it first or give {ref.name}@sha256:<digest>"
            ) from None
        return ModelSpec(ref, ref.digest, None, None, None)
    modelcar = _is_modelcar(store, desc.media_type, desc.digest)
    if need_modelcar and not modelcar:
        raise UsageError(
            f"{text}: a ModelPack artifact without a runnable image, which containerd cannot "
            "mount as an image volume; build it with --modelcar (or push --modelcar) "
            "or generate with --init-container"
        )
    from ocillm.gguf import read_gguf_info
    from ocillm.image.view import open_image

    view = open_image(store, ref)
    params = view.params
    try:
        info = read_gguf_info(view.model_path)
    except (OSError, ValueError) as e:  # ValueError: GGUFFormatError
        raise OcillmError(f"{text}: cannot read its GGUF to estimate memory: {e}") from None
    # The draft and the projector load beside the model in the same runner: count them too.
    draft_path, projector_path = view.path(Role.DRAFT), view.path(Role.PROJECTOR)
    try:
        draft = ModelShape.from_gguf_info(read_gguf_info(draft_path)) if draft_path else None
        projector = (
            ProjectorShape.from_gguf_info(read_gguf_info(projector_path))
            if projector_path
            else None
        )
    except (OSError, ValueError) as e:
        raise OcillmError(f"{text}: cannot read its GGUF to estimate memory: {e}") from None
    needs = estimate(
        ModelShape.from_gguf_info(info),
        EstimateOptions(
            num_ctx=int(params.get("num_ctx") or num_ctx),
            num_batch=int(params.get("num_batch") or DEFAULT_NUM_BATCH),
            num_parallel=num_parallel,
        ),
        draft=draft,
        projector=projector,
    )
    return ModelSpec(ref, desc.digest, needs.cpu_size, view.size, modelcar)


def _is_modelcar(store: Store, media_type: str | None, digest: str) -> bool:
    if media_type not in mt.INDEX_TYPES:
        return False
    index = Index.model_validate_json(store.blobs.read_bytes(digest))
    runnable = [e for e in index.manifests if e.platform and e.platform.get("os") != "unknown"]
    return modelpack_entry(index) is not None and bool(runnable)

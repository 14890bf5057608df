"""The images the daemon serves: a name → the image, its GGUF facts, template and load request.

GGUF headers are read once per model blob (blobs are immutable, named by digest). The runner key
is the model blob (plus adapters), as Ollama keys runners by model path: two tags of one image
share a runner.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocillm.errors import InvalidReference, NotFound, OcillmError
from ocillm.gguf import GGUFInfo, read_gguf_info
from ocillm.gpu.estimate import ModelShape
from ocillm.image import ImageView, Role, open_image
from ocillm.image.describe import capabilities, details
from ocillm.oci.reference import Reference
from ocillm.scheduler import LoadOptions, LoadRequest
from ocillm.server.errors import ApiError
from ocillm.server.metrics import label_model
from ocillm.store import Store
from ocillm.template import DEFAULT_TEMPLATE

log = logging.getLogger("ocillm.server")


@dataclass(frozen=True)
class TemplateChoice:
    """Which template renders prompts: a Go template (TEMPLATE) or a GGUF Jinja chat template."""

    kind: str  # "go" or "jinja"
    text: str


@dataclass
class ServedModel:
    requested: str  # the name as the request wrote it (Ollama echoes it back)
    reference: Reference
    view: ImageView
    info: GGUFInfo
    capabilities: list[str]
    admit: Callable[[], None] | None = None  # the trust policy, checked before every load

    @property
    def full_name(self) -> str:
        return str(self.reference)

    @property
    def display_name(self) -> str:
        return self.view.store.display(self.reference)

    @property
    def has_projector(self) -> bool:
        return self.projector is not None

    @property
    def projector(self) -> Path | None:
        """The image encoder (mmproj GGUF) of a vision model, if the image has one."""
        return self.view.path(Role.PROJECTOR)

    @property
    def adapters(self) -> tuple[Path, ...]:
        return tuple(self.view.paths(Role.ADAPTER))

    @property
    def context_length(self) -> int:
        return self.info.context_length or 0

    @property
    def draft(self) -> Path | None:
        """The DRAFT model of speculative decoding, if the image has one."""
        return self.view.path(Role.DRAFT)

    def key(self, *, embedding: bool = False) -> str:
        parts = [str(self.view.model_path), *map(str, self.adapters)]
        if self.draft is not None and not embedding:
            parts.append(f"draft={self.draft}")
        if self.projector is not None and not embedding:
            parts.append(f"projector={self.projector}")
        if embedding and not self.info.is_embedding_model:
            parts.append("embedding")  # a completion model loaded for embeddings: its own runner
        return "|".join(parts)

    def embedding_load(self) -> bool:
        return self.info.is_embedding_model

    def load_request(
        self, options: LoadOptions, *, keep_alive: float | None, priority: int
    ) -> LoadRequest:
        if self.admit is not None:
            self.admit()
        return LoadRequest(
            model_path=self.view.model_path,
            name=self.display_name,
            digest=self.view.digest,
            adapters=self.adapters,
            draft=None if options.embedding else self.draft,
            projector=None if options.embedding else self.projector,
            options=options,
            keep_alive=keep_alive,
            priority=priority,
            shape=ModelShape.from_gguf_info(self.info),  # read once here, not again at load
        )

    def template(self, override: str | None = None) -> TemplateChoice:
        if override:
            return TemplateChoice("go", override)
        if self.view.template is not None:
            return TemplateChoice("go", self.view.template)
        jinja = self.view.chat_template or self.info.chat_template
        if jinja:
            return TemplateChoice("jinja", jinja)
        return TemplateChoice("go", DEFAULT_TEMPLATE)

    def details(self) -> dict[str, Any]:
        return details(self.view)


class ModelCatalog:
    """Opens images by name for the API; caches GGUF facts and details by digest."""

    def __init__(self, store: Store, *, policy: Path | None = None) -> None:
        self.store = store
        self.policy = policy  # the trust policy file; None: no check
        self._info: dict[Path, GGUFInfo] = {}
        self._details: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def info(self, path: Path) -> GGUFInfo:
        with self._lock:
            cached = self._info.get(path)
        if cached is None:
            cached = read_gguf_info(path)
            with self._lock:
                self._info[path] = cached
        return cached

    def open(self, name: str) -> ServedModel:
        """The image ``name`` names; 400 ``model is required`` when empty, 404 when missing."""
        if not name.strip():
            raise ApiError(400, "model is required")
        try:
            ref = self.store.parse(name)
            view = open_image(self.store, ref)
        except (InvalidReference, NotFound):
            raise ApiError(404, f"model '{name}' not found") from None
        info = self.info(view.model_path)
        caps = capabilities(view, info)
        model = ServedModel(name, ref, view, info, caps, self._admission(ref, view.digest))
        label_model(model.display_name)
        with self._lock:
            self._details[view.digest] = model.details()
        return model

    def _admission(self, ref: Reference, digest: str) -> Callable[[], None] | None:
        """The policy check of the store's copy, so an image copied in by other means than
        ``pull`` is checked too: 403 when enforced and unsigned, a log line when warned."""
        policy = self.policy
        if policy is None:
            return None

        def admit() -> None:
            from ocillm.trust.admit import check_local

            try:
                check_local(policy, self.store, ref, digest, log.warning)
            except OcillmError as e:
                raise ApiError(403, str(e)) from None

        return admit

    def details_of(self, digest: str) -> dict[str, Any]:
        """The details of a manifest served before (what ``/api/ps`` shows)."""
        with self._lock:
            return dict(self._details.get(digest) or {})


def reference_or_400(store: Store, text: str, message: str) -> Reference:
    """``text`` as a reference (short names on ``store``'s default registry), else a 400."""
    try:
        return store.parse(text)
    except OcillmError:
        raise ApiError(400, message) from None

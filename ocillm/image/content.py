"""What an image carries, independent of the manifest format it travels in."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Role(str, Enum):
    """The Modelfile piece a layer carries."""

    MODEL = "model"
    PROJECTOR = "projector"
    ADAPTER = "adapter"
    DRAFT = "draft"
    TEMPLATE = "template"
    CHAT_TEMPLATE = "chat_template"  # a Jinja chat template (Docker Model Runner images)
    SYSTEM = "system"
    PARAMS = "params"
    MESSAGES = "messages"
    LICENSE = "license"


WEIGHT_ROLES = (Role.MODEL, Role.PROJECTOR, Role.ADAPTER, Role.DRAFT)
# The order layers are written in; conversions between formats keep it.
ROLE_ORDER = (
    Role.MODEL,
    Role.PROJECTOR,
    Role.ADAPTER,
    Role.DRAFT,
    Role.TEMPLATE,
    Role.CHAT_TEMPLATE,
    Role.SYSTEM,
    Role.PARAMS,
    Role.MESSAGES,
    Role.LICENSE,
)


@dataclass(frozen=True)
class Piece:
    role: Role
    digest: str
    size: int


@dataclass
class Details:
    """What `show` and `/api/tags` report; from GGUF metadata at build time."""

    format: str = "gguf"
    family: str = ""
    parameter_size: str = ""
    quantization_level: str = ""


@dataclass
class ImageContent:
    pieces: list[Piece]
    details: Details = field(default_factory=Details)
    labels: dict[str, str] = field(default_factory=dict)
    requires: str | None = None
    renderer: str | None = None
    parser: str | None = None
    created: str | None = None  # RFC 3339, only from SOURCE_DATE_EPOCH: builds stay reproducible
    source_format: str = "modelpack"

    def ordered(self) -> list[Piece]:
        rank = {role: i for i, role in enumerate(ROLE_ORDER)}
        return sorted(self.pieces, key=lambda p: rank[p.role])  # stable within a role

    def first(self, role: Role) -> Piece | None:
        return next((p for p in self.pieces if p.role == role), None)

    def all(self, role: Role) -> list[Piece]:
        return [p for p in self.pieces if p.role == role]

    @property
    def model(self) -> Piece | None:
        return self.first(Role.MODEL)

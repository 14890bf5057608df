"""The two manifest shapes ocillm writes (ModelPack, Ollama) and the ones it reads.

See docs/formats.md. Writers are pure: content in, (manifest, config bytes) out; the caller
stores the config blob and the manifest. Layer file names are canonical by role, so converting
between formats and back gives the same digests.
"""

from __future__ import annotations

import json
from typing import Any

from ocillm.errors import OcillmError
from ocillm.image.content import WEIGHT_ROLES, Details, ImageContent, Piece, Role
from ocillm.oci import mediatypes as mt
from ocillm.oci.models import Descriptor, Manifest, canonical_json

MODELPACK = "modelpack"
OLLAMA = "ollama"
WRITABLE_FORMATS = (MODELPACK, OLLAMA)

_FILENAMES = {
    Role.MODEL: "model.gguf",
    Role.PROJECTOR: "projector.gguf",
    Role.ADAPTER: "adapter.gguf",
    Role.DRAFT: "draft.gguf",
    Role.TEMPLATE: "template.gotmpl",
    Role.CHAT_TEMPLATE: "chat_template.jinja",
    Role.SYSTEM: "system.txt",
    Role.PARAMS: "params.json",
    Role.MESSAGES: "messages.json",
    Role.LICENSE: "LICENSE",
}
_OLLAMA_TYPES = {
    Role.MODEL: mt.OLLAMA_MODEL,
    Role.PROJECTOR: mt.OLLAMA_PROJECTOR,
    Role.ADAPTER: mt.OLLAMA_ADAPTER,
    Role.DRAFT: mt.OLLAMA_DRAFT,
    Role.TEMPLATE: mt.OLLAMA_TEMPLATE,
    Role.SYSTEM: mt.OLLAMA_SYSTEM,
    Role.PARAMS: mt.OLLAMA_PARAMS,
    Role.MESSAGES: mt.OLLAMA_MESSAGES,
    Role.LICENSE: mt.OLLAMA_LICENSE,
}
_OLLAMA_ROLES = {v: k for k, v in _OLLAMA_TYPES.items()} | {mt.OLLAMA_PROMPT: Role.TEMPLATE}


class UnsupportedImage(OcillmError):
    http_status = 400


def _filename(role: Role, n: int) -> str:
    name = _FILENAMES[role]
    if n == 0:
        return name
    stem, dot, ext = name.partition(".")
    return f"{stem}-{n}{dot}{ext}"


def _modelpack_type(role: Role) -> str:
    if role in WEIGHT_ROLES:
        return mt.MODELPACK_WEIGHT
    if role is Role.LICENSE:
        return mt.MODELPACK_DOC
    return mt.MODELPACK_WEIGHT_CONFIG


def write_modelpack(content: ImageContent) -> tuple[Manifest, bytes]:
    layers: list[Descriptor] = []
    seen: dict[Role, int] = {}
    for piece in content.ordered():
        n = seen.get(piece.role, 0)
        seen[piece.role] = n + 1
        name = _filename(piece.role, n)
        layers.append(
            Descriptor(
                media_type=_modelpack_type(piece.role),
                digest=piece.digest,
                size=piece.size,
                annotations={
                    mt.ANN_FILEPATH: name,
                    mt.ANN_UNTESTED: "false",
                    mt.ANN_ROLE: piece.role.value,
                    mt.ANN_TITLE: name,
                },
            )
        )
    d = content.details
    descriptor: dict[str, Any] = {}
    if content.created:
        descriptor["createdAt"] = content.created
    if d.family:
        descriptor["family"] = d.family
    config: dict[str, Any] = {
        "descriptor": descriptor,
        "modelfs": {"type": "layers", "diffIds": [layer.digest for layer in layers]},
        "config": {
            k: v
            for k, v in (
                ("architecture", d.family),
                ("format", d.format),
                ("paramSize", d.parameter_size),
                ("quantization", d.quantization_level),
            )
            if v
        },
    }
    config_bytes = canonical_json(config)
    annotations = dict(content.labels)
    for key, value in (
        ("io.ocillm.requires", content.requires),
        ("io.ocillm.renderer", content.renderer),
        ("io.ocillm.parser", content.parser),
        (mt.ANN_CREATED, content.created),
    ):
        if value:
            annotations[key] = value
    manifest = Manifest(
        schema_version=2,
        media_type=mt.OCI_MANIFEST,
        artifact_type=mt.MODELPACK_ARTIFACT,
        config=_config_descriptor(config_bytes, mt.MODELPACK_CONFIG),
        layers=layers,
        annotations=dict(sorted(annotations.items())) or None,
    )
    return manifest, config_bytes


def write_ollama(content: ImageContent) -> tuple[Manifest, bytes]:
    """Ollama's registry format: Docker schema 2, ConfigV2 config, vnd.ollama.image.* layers."""
    layers = []
    for piece in content.ordered():
        if piece.role not in _OLLAMA_TYPES:
            continue  # a Jinja chat template has no Ollama layer; the GGUF carries its own
        layers.append(
            Descriptor(media_type=_OLLAMA_TYPES[piece.role], digest=piece.digest, size=piece.size)
        )
    d = content.details
    config: dict[str, Any] = {
        "model_format": d.format or "gguf",
        "model_family": d.family,
        "model_families": [d.family] if d.family else None,
        "model_type": d.parameter_size,
        "file_type": d.quantization_level,
    }
    for key, value in (
        ("renderer", content.renderer),
        ("parser", content.parser),
        ("requires", content.requires),
    ):
        if value:
            config[key] = value
    config["architecture"] = "amd64"
    config["os"] = "linux"
    config_bytes = canonical_json(config)
    manifest = Manifest(
        schema_version=2,
        media_type=mt.DOCKER_MANIFEST,
        config=_config_descriptor(config_bytes, mt.DOCKER_CONFIG),
        layers=layers,
    )
    return manifest, config_bytes


def write_manifest(content: ImageContent, fmt: str) -> tuple[Manifest, bytes]:
    if fmt == MODELPACK:
        return write_modelpack(content)
    if fmt == OLLAMA:
        return write_ollama(content)
    raise UnsupportedImage(f"unknown format {fmt!r}: expected one of {', '.join(WRITABLE_FORMATS)}")


def _config_descriptor(data: bytes, media_type: str) -> Descriptor:
    import hashlib

    return Descriptor(
        media_type=media_type, digest="sha256:" + hashlib.sha256(data).hexdigest(), size=len(data)
    )


# -- reading -------------------------------------------------------------------------------


def detect_format(manifest: Manifest) -> str:
    config_type = manifest.config.media_type
    if any(layer.media_type.startswith(mt.OLLAMA_PREFIX) for layer in manifest.layers):
        return OLLAMA
    if manifest.artifact_type == mt.MODELPACK_ARTIFACT or config_type == mt.MODELPACK_CONFIG:
        return MODELPACK
    if config_type in (mt.DMR_CONFIG_V01, mt.DMR_CONFIG_V02) or any(
        layer.media_type == mt.DMR_GGUF for layer in manifest.layers
    ):
        return "dmr"
    if any((layer.annotation(mt.ANN_TITLE) or "").endswith(".gguf") for layer in manifest.layers):
        return "oras"
    raise UnsupportedImage(
        "not a model image: no Ollama, ModelPack or Docker Model Runner layers and no .gguf file"
    )


def _role_from_name(name: str, media_type: str, have_model: bool) -> Role | None:
    lower = name.lower()
    if lower.endswith(".gguf") or media_type in (mt.MODELPACK_WEIGHT_GGUF, mt.DMR_GGUF):
        if "mmproj" in lower or "projector" in lower:
            return Role.PROJECTOR
        if "adapter" in lower or "lora" in lower:
            return Role.ADAPTER
        if "draft" in lower:
            return Role.DRAFT
        return None if have_model else Role.MODEL
    if lower.endswith(".jinja"):
        return Role.CHAT_TEMPLATE
    base = lower.rsplit("/", 1)[-1]
    for role, stem in (
        (Role.TEMPLATE, "template"),
        (Role.SYSTEM, "system"),
        (Role.PARAMS, "params"),
        (Role.MESSAGES, "messages"),
        (Role.LICENSE, "license"),
    ):
        if base.startswith(stem):
            return role
    return None


def read_content(manifest: Manifest, config: dict[str, Any]) -> ImageContent:
    fmt = detect_format(manifest)
    pieces: list[Piece] = []
    for layer in manifest.layers:
        role: Role | None
        if fmt == OLLAMA:
            role = _OLLAMA_ROLES.get(layer.media_type)
        elif layer.annotation(mt.ANN_ROLE) in {r.value for r in Role}:
            role = Role(layer.annotation(mt.ANN_ROLE))
        elif fmt == "dmr" and layer.media_type == mt.DMR_LICENSE:
            role = Role.LICENSE
        elif fmt == "dmr" and layer.media_type == mt.DMR_MMPROJ:
            role = Role.PROJECTOR
        elif fmt == "dmr" and layer.media_type == mt.DMR_CHAT_TEMPLATE:
            role = Role.CHAT_TEMPLATE
        else:
            name = layer.annotation(mt.ANN_FILEPATH) or layer.annotation(mt.ANN_TITLE) or ""
            if fmt == MODELPACK and layer.media_type == mt.MODELPACK_DOC and not name:
                name = "LICENSE"
            role = _role_from_name(
                name, layer.media_type, any(p.role is Role.MODEL for p in pieces)
            )
        if role is not None:
            pieces.append(Piece(role, layer.digest, layer.size))
    if not any(p.role is Role.MODEL for p in pieces):
        raise UnsupportedImage("the image has no GGUF model layer")
    annotations = manifest.annotations or {}
    content = ImageContent(pieces=pieces, details=_details(fmt, config), source_format=fmt)
    if fmt == OLLAMA:
        content.requires = config.get("requires") or None
        content.renderer = config.get("renderer") or None
        content.parser = config.get("parser") or None
    else:
        content.requires = annotations.get("io.ocillm.requires")
        content.renderer = annotations.get("io.ocillm.renderer")
        content.parser = annotations.get("io.ocillm.parser")
        content.created = annotations.get(mt.ANN_CREATED)
        content.labels = {
            k: v
            for k, v in annotations.items()
            if not k.startswith("io.ocillm.") and k != mt.ANN_CREATED
        }
    return content


def _details(fmt: str, config: dict[str, Any]) -> Details:
    if fmt == OLLAMA:
        return Details(
            format=str(config.get("model_format") or "gguf"),
            family=str(config.get("model_family") or ""),
            parameter_size=str(config.get("model_type") or ""),
            quantization_level=str(config.get("file_type") or ""),
        )
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    assert isinstance(inner, dict)
    return Details(
        format=str(inner.get("format") or "gguf"),
        family=str(inner.get("architecture") or ""),
        parameter_size=str(inner.get("paramSize") or inner.get("parameters") or ""),
        quantization_level=str(inner.get("quantization") or ""),
    )


def parse_config(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

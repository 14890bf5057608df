"""Modelfile -> image: every piece its own blob, a config, a manifest, tags in the store."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ocillm.convert import ConvertError, is_checkpoint, is_lora
from ocillm.errors import BuildError, ModelfileError, NotFound, TemplateError
from ocillm.gguf import is_gguf, read_gguf_info
from ocillm.image import MODELPACK, ImageContent, Piece, Role, open_image, write_manifest
from ocillm.image.content import Details
from ocillm.modelfile import (
    Command,
    Modelfile,
    blob_digest,
    looks_like_path,
    parse_commands,
    parse_modelfile,
    resolve_path,
)
from ocillm.oci.digest import sha256_digest
from ocillm.oci.models import Descriptor
from ocillm.oci.reference import Reference
from ocillm.progress import Event, Reporter, silent
from ocillm.store import Store

PullBase = Callable[[Reference], None]


@dataclass
class BuildResult:
    descriptor: Descriptor
    references: list[Reference]
    content: ImageContent
    format: str
    warnings: list[str] = field(default_factory=list)


def read_modelfile(path: Path) -> tuple[Modelfile, list[Command]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BuildError(f"{path}: no such file (name the Modelfile with -f)") from None
    except IsADirectoryError:
        raise BuildError(f"{path}: is a directory, not a Modelfile") from None
    name = str(path)
    return parse_modelfile(data, filename=name), parse_commands(data, filename=name)


def build_image(
    modelfile: Path,
    tags: Sequence[Reference],
    *,
    store: Store,
    context: Path | None = None,
    fmt: str = MODELPACK,
    quantize: str | None = None,
    labels: Mapping[str, str] | None = None,
    report: Reporter = silent,
    pull_base: PullBase | None = None,
    source_date_epoch: int | None = None,
) -> BuildResult:
    """Build ``modelfile`` and tag the result with every reference in ``tags``.

    ``source_date_epoch`` (``SOURCE_DATE_EPOCH``) stamps the image; None leaves it unstamped.
    A short FROM name means ``store.default_registry``.
    """
    report(Event("parsing modelfile"))
    parsed, commands = read_modelfile(modelfile)
    return compile_modelfile(
        parsed,
        tags,
        store=store,
        context=context or modelfile.parent,
        filename=str(modelfile),
        commands=commands,
        fmt=fmt,
        quantize=quantize,
        labels=labels,
        report=report,
        pull_base=pull_base,
        source_date_epoch=source_date_epoch,
    )


def compile_modelfile(
    m: Modelfile,
    tags: Sequence[Reference],
    *,
    store: Store,
    context: Path,
    filename: str = "Modelfile",
    commands: Sequence[Command] = (),
    fmt: str = MODELPACK,
    quantize: str | None = None,
    labels: Mapping[str, str] | None = None,
    report: Reporter = silent,
    pull_base: PullBase | None = None,
    source_date_epoch: int | None = None,
) -> BuildResult:
    compiler = _Compiler(store, context, filename, commands, report, pull_base)
    with store.writing():
        content = compiler.content(m, quantize)
        content.labels = dict(labels or {})
        warnings = list(m.warnings)
        if content.labels and fmt != MODELPACK:
            warnings.append(
                "--label values are not carried by the ollama format (Docker schema 2 has no "
                "annotations)"
            )
        content.created = _source_date(source_date_epoch)
        report(Event("writing manifest"))
        manifest, config = write_manifest(content, fmt)
        store.blobs.put_bytes(config)
        desc = store.put_manifest(manifest)
        for ref in tags:
            store.tag(ref, desc)
    report(Event("success", digest=desc.digest))
    return BuildResult(desc, list(tags), content, fmt, warnings)


class _Compiler:
    def __init__(
        self,
        store: Store,
        context: Path,
        filename: str,
        commands: Sequence[Command],
        report: Reporter,
        pull_base: PullBase | None,
    ) -> None:
        self.store = store
        self.context = context
        self.filename = filename
        self.commands = commands
        self.report = report
        self.pull_base = pull_base
        self.converted_params: dict[str, Any] = {}  # stop tokens of a converted checkpoint

    def error(self, instruction: str, value: str, message: str) -> ModelfileError:
        for c in self.commands:
            if c.name == instruction and c.args == value:
                return ModelfileError(message, filename=self.filename, line=c.line, column=c.column)
        return ModelfileError(message, filename=self.filename)

    def content(self, m: Modelfile, quantize: str | None) -> ImageContent:
        pieces: list[Piece] = []
        base_params: dict[str, Any] = {}
        inherited = ImageContent(pieces=[])
        for value in m.froms:
            path = resolve_path(value, self.context)
            if path.exists():
                pieces.extend(self.weights("model", value, path, Role.MODEL))
            elif blob_digest(value):
                pieces.extend(self.stored_weights("model", value, Role.MODEL))
            elif looks_like_path(value):
                raise self.error(
                    "model", value, f"FROM {value}: no such file or directory ({path})"
                )
            else:
                view = self.base_image(value)
                inherited = view.content
                pieces.extend(view.content.pieces)
                base_params = view.params
        if not any(p.role is Role.MODEL for p in pieces):
            raise ModelfileError("FROM names no GGUF model", filename=self.filename)

        def replace(role: Role, new: list[Piece]) -> None:
            pieces[:] = [p for p in pieces if p.role is not role] + new

        if m.adapters:
            base = next(p for p in pieces if p.role is Role.MODEL)
            replace(Role.ADAPTER, [a for v in m.adapters for a in self.adapter(v, base)])
        if m.draft:
            path = resolve_path(m.draft, self.context)
            if any(resolve_path(v, self.context) == path for v in m.froms):
                raise self.error(
                    "draft",
                    m.draft,
                    f"DRAFT must not reference the same local path as FROM: {path}",
                )
            if not path.exists():
                raise self.error("draft", m.draft, f"DRAFT {m.draft}: no such file ({path})")
            replace(Role.DRAFT, self.weights("draft", m.draft, path, Role.DRAFT))
        if m.template is not None:
            self.check_template(m.template)
            replace(Role.TEMPLATE, [self.text(Role.TEMPLATE, m.template)])
        if m.system is not None:
            replace(Role.SYSTEM, [self.text(Role.SYSTEM, m.system)])
        params = {**base_params, **self.converted_params, **m.parameters}
        if m.parameters or self.converted_params:
            body = json.dumps(params, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            replace(Role.PARAMS, [self.text(Role.PARAMS, body)])
        if m.messages:
            body = json.dumps([msg.model_dump() for msg in m.messages], ensure_ascii=False)
            replace(Role.MESSAGES, [self.text(Role.MESSAGES, body)])
        if m.licenses:
            replace(Role.LICENSE, [self.text(Role.LICENSE, text) for text in m.licenses])
        if quantize:
            model = next(p for p in pieces if p.role is Role.MODEL)
            quantized = self.quantize(model, quantize)
            pieces = [quantized if p is model else p for p in pieces]
        model = next(p for p in pieces if p.role is Role.MODEL)
        info = read_gguf_info(self.store.blobs.path(model.digest))
        return ImageContent(
            pieces=pieces,
            details=Details(
                format="gguf",
                family=info.architecture,
                parameter_size=info.parameter_size,
                quantization_level=info.file_type,
            ),
            requires=m.requires or inherited.requires,
            renderer=m.renderer or inherited.renderer,
            parser=m.parser or inherited.parser,
        )

    def base_image(self, value: str) -> Any:
        try:
            ref = self.store.parse(value)
        except Exception as e:
            raise self.error("model", value, f"FROM {value}: {e}") from None
        try:
            return open_image(self.store, ref)
        except NotFound:
            if self.pull_base is None:
                raise self.error(
                    "model",
                    value,
                    f"FROM {value}: not in the local store, and pulling a base image from a "
                    f"registry is not supported yet; run `ocillm pull {value}` first",
                ) from None
        self.pull_base(ref)
        return open_image(self.store, ref)

    def weights(self, instruction: str, value: str, path: Path, role: Role) -> list[Piece]:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix == ".gguf" and p.is_file())
            if not files:
                if is_checkpoint(path):
                    return [self.convert(instruction, value, path, role)]
                raise self.error(instruction, value, f"{path}: no .gguf file in this directory")
        else:
            files = [path]
        pieces = []
        for file in files:
            if not is_gguf(file):
                raise self.error(instruction, value, f"{file}: not a GGUF file")
            status, total = f"copying {file.name}", file.stat().st_size
            self.report(Event(status, total=total, completed=0))

            def copied(n: int, status: str = status, total: int = total) -> None:
                self.report(Event(status, total=total, completed=n))

            digest, size, new = self.store.blobs.import_file(file, copied)
            self.report(_layer_event(digest, new, size))
            actual = role
            if role in (Role.MODEL, Role.ADAPTER) and _is_projector(file):
                actual = Role.PROJECTOR
            pieces.append(Piece(actual, digest, size))
        return pieces

    def stored_weights(self, instruction: str, value: str, role: Role) -> list[Piece]:
        """A FROM/ADAPTER naming a store's blob file that is not on disk here: the blob with
        that digest in the local store (a Modelfile from ``ollama show --modelfile``)."""
        digest = blob_digest(value)
        assert digest is not None
        keyword = instruction.upper() if instruction != "model" else "FROM"
        if not self.store.blobs.has(digest):
            raise self.error(
                instruction,
                value,
                f"{keyword} {value}: no such file, and blob {digest} is not in the local store "
                f"({self.store.root})",
            )
        path = self.store.blobs.path(digest)
        if not is_gguf(path):
            raise self.error(instruction, value, f"{keyword} {value}: blob {digest} is not GGUF")
        size = path.stat().st_size
        self.report(_layer_event(digest, False, size))
        actual = (
            Role.PROJECTOR if role in (Role.MODEL, Role.ADAPTER) and _is_projector(path) else role
        )
        return [Piece(actual, digest, size)]

    def adapter(self, value: str, base: Piece) -> list[Piece]:
        path = resolve_path(value, self.context)
        if not path.exists() and blob_digest(value):
            return self.stored_weights("adapter", value, Role.ADAPTER)
        if not path.exists():
            raise self.error("adapter", value, f"ADAPTER {value}: no such file ({path})")
        if is_lora(path):
            return [self.convert("adapter", value, path, Role.ADAPTER, base)]
        return self.weights("adapter", value, path, Role.ADAPTER)

    def convert(
        self, instruction: str, value: str, path: Path, role: Role, base: Piece | None = None
    ) -> Piece:
        """A Hugging Face checkpoint (or, with ``base``, a PEFT LoRA for it) -> a GGUF blob."""
        from ocillm.build.convert import convert_adapter_dir, convert_model_dir

        keyword = "FROM" if instruction == "model" else instruction.upper()
        try:
            if base is not None:
                return convert_adapter_dir(self.store, path, base, self.report)
            piece, converted = convert_model_dir(self.store, path, role, self.report)
        except ConvertError as e:
            raise self.error(instruction, value, f"{keyword} {value}: {e}") from None
        if role is Role.MODEL and converted.stop:
            self.converted_params["stop"] = converted.stop
        return piece

    def text(self, role: Role, body: str) -> Piece:
        data = body.encode("utf-8")
        new = not self.store.blobs.has(sha256_digest(data))
        digest = self.store.blobs.put_bytes(data)
        self.report(_layer_event(digest, new, len(data)))
        return Piece(role, digest, len(data))

    def check_template(self, text: str) -> None:
        from ocillm.template import parse_template

        try:
            parse_template(text, name="TEMPLATE")
        except TemplateError as e:
            where = f" (template line {e.line}, column {e.column})" if e.line else ""
            raise self.error("template", text, f"invalid template: {e.message}{where}") from None

    def quantize(self, model: Piece, target: str) -> Piece:
        from ocillm.build.quantize import quantize_blob

        return quantize_blob(self.store, model, target, self.report)


def _layer_event(digest: str, new: bool, size: int) -> Event:
    verb = "creating new layer" if new else "using existing layer"
    return Event(f"{verb} {digest}", digest=digest, total=size, completed=size)


def _is_projector(path: Path) -> bool:
    try:
        info = read_gguf_info(path)
    except Exception:
        return False
    return info.architecture == "clip" or str(info.metadata.get("general.type", "")) == "mmproj"


def _source_date(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    try:
        stamp = datetime.fromtimestamp(epoch, timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise BuildError(f"SOURCE_DATE_EPOCH={epoch}: out of range") from None
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")

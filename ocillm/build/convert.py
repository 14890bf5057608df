"""FROM / ADAPTER on a Hugging Face folder: convert into the store's ingest area, then commit.

The GGUF is written to a claimed temp file and only gets its digest name once complete, as every
other blob does; a failed conversion leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

from ocillm.convert import BaseModel, Converted, convert_checkpoint, convert_lora
from ocillm.gguf import read_gguf_info
from ocillm.image import Piece, Role
from ocillm.progress import Event, Reporter
from ocillm.store import Store
from ocillm.store.copyfile import hash_file


def convert_model_dir(
    store: Store, folder: Path, role: Role, report: Reporter
) -> tuple[Piece, Converted]:
    status = f"converting {folder.name} to GGUF"
    report(Event(status))

    def progress(done: int, total: int) -> None:
        report(Event(status, total=total, completed=done))

    tmp = store.blobs.temp_path()
    try:
        converted = convert_checkpoint(folder, tmp, progress)
    except BaseException:
        store.blobs.discard(tmp)
        raise
    return _commit(store, tmp, role, report), converted


def convert_adapter_dir(store: Store, folder: Path, base: Piece, report: Reporter) -> Piece:
    info = read_gguf_info(store.blobs.path(base.digest))
    report(Event(f"converting LoRA {folder.name} to GGUF"))
    tmp = store.blobs.temp_path()
    try:
        convert_lora(folder, BaseModel.from_metadata(dict(info.metadata)), tmp)
    except BaseException:
        store.blobs.discard(tmp)
        raise
    return _commit(store, tmp, Role.ADAPTER, report)


def _commit(store: Store, tmp: Path, role: Role, report: Reporter) -> Piece:
    digest = hash_file(tmp)[0]
    new = not store.blobs.has(digest)  # a rebuild of the same checkpoint gives the same bytes
    store.blobs.commit(tmp, known=digest)
    size = store.blobs.size(digest)
    verb = "creating new layer" if new else "using existing layer"
    report(Event(f"{verb} {digest}", digest=digest, total=size, completed=size))
    return Piece(role, digest, size)

"""Commands over the local store: list, show, inspect, tag, rm, prune."""

from __future__ import annotations

import json
from typing import Any

import typer

from ocillm.cli.app import app
from ocillm.cli.common import open_store
from ocillm.cli.output import emit_json, human_bytes, human_time, table
from ocillm.errors import OcillmError
from ocillm.store.ingest import Reclaimed


@app.command("list")
def list_images(
    ctx: typer.Context,
    prefix: str | None = typer.Argument(
        None, metavar="PREFIX", help="Only names starting with this."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (as /api/tags)."),
) -> None:
    """List the images in the local store (NAME, ID, SIZE, MODIFIED)."""
    from ocillm.image import open_image

    store = open_store(ctx)
    rows: list[list[str]] = []
    entries: list[dict[str, Any]] = []
    records = sorted(store.images(), key=lambda r: r.modified, reverse=True)
    for record in records:
        name = store.display(record.reference)
        if prefix and not name.startswith(prefix):
            continue
        try:
            view = open_image(store, record.reference)
            size = view.size
            details = view.content.details
        except OcillmError:
            continue  # not a model image (another tool's entry); `inspect` still shows it
        digest_hex = record.descriptor.digest.split(":", 1)[1]
        rows.append([name, digest_hex[:12], human_bytes(size), human_time(record.modified)])
        entries.append(
            {
                "name": name,
                "model": name,
                "modified_at": record.modified.isoformat(),
                "size": size,
                "digest": digest_hex,
                "details": {
                    "format": details.format,
                    "family": details.family,
                    "families": [details.family] if details.family else None,
                    "parameter_size": details.parameter_size,
                    "quantization_level": details.quantization_level,
                },
            }
        )
    if json_out:
        emit_json({"models": entries})
    else:
        typer.echo(table(["NAME", "ID", "SIZE", "MODIFIED"], rows))


app.command("ls", hidden=True)(list_images)


def _section(title: str, rows: list[tuple[str, str]]) -> str:
    width = max((len(k) for k, _ in rows), default=0)
    lines = [f"  {title}"]
    lines += [f"    {k.ljust(width + 4)}{v}".rstrip() for k, v in rows]
    return "\n".join(lines)


def _human_show(data: dict[str, Any], model_info: dict[str, Any]) -> str:
    arch = str(model_info.get("general.architecture", data["details"]["family"]))

    def kv(key: str) -> Any:
        return model_info.get(f"{arch}.{key}")

    model_rows = [("architecture", arch), ("parameters", data["details"]["parameter_size"])]
    for label, key in (
        ("context length", "context_length"),
        ("embedding length", "embedding_length"),
    ):
        if kv(key) is not None:
            model_rows.append((label, str(kv(key))))
    model_rows.append(("quantization", data["details"]["quantization_level"]))
    parts = [_section("Model", model_rows)]
    parts.append(_section("Capabilities", [(c, "") for c in data["capabilities"]]))
    if data["parameters"]:
        rows = []
        for line in data["parameters"].splitlines():
            key, _, value = line.partition(" ")
            rows.append((key, value.strip()))
        parts.append(_section("Parameters", rows))
    if data["system"]:
        parts.append(_section("System", [(line, "") for line in data["system"].splitlines()[:4]]))
    if data["license"]:
        lines = [ln for ln in data["license"].splitlines() if ln.strip()][:2]
        parts.append(_section("License", [(ln.strip(), "") for ln in lines]))
    return "\n\n".join(parts) + "\n"


@app.command()
def show(
    ctx: typer.Context,
    reference: str = typer.Argument(..., metavar="REF", help="Image reference."),
    modelfile: bool = typer.Option(False, "--modelfile", help="Print the Modelfile."),
    parameters: bool = typer.Option(False, "--parameters", help="Print the parameters."),
    template: bool = typer.Option(False, "--template", help="Print the template."),
    system: bool = typer.Option(False, "--system", help="Print the system message."),
    license_: bool = typer.Option(False, "--license", help="Print the license."),
    verbose: bool = typer.Option(False, "--verbose", help="Full metadata arrays and tensors."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (as /api/show)."),
) -> None:
    """Show what an image holds, as `ollama show` does."""
    from ocillm.image import open_image
    from ocillm.image.describe import show as describe

    store = open_store(ctx)
    view = open_image(store, store.parse(reference))
    data = describe(view, verbose=verbose)
    if json_out:
        emit_json(data)
    elif modelfile:
        typer.echo(data["modelfile"], nl=False)
    elif parameters:
        typer.echo(data["parameters"])
    elif template:
        typer.echo(data["template"])
    elif system:
        typer.echo(data["system"])
    elif license_:
        typer.echo(data["license"])
    else:
        typer.echo(_human_show(data, data["model_info"]))


@app.command()
def inspect(
    ctx: typer.Context, reference: str = typer.Argument(..., metavar="REF", help="Image reference.")
) -> None:
    """Print the manifest and config of an image as JSON."""
    from ocillm.image import detect_format
    from ocillm.image.formats import parse_config

    store = open_store(ctx)
    r = store.parse(reference)
    desc = store.resolve(r)
    manifest = store.manifest(desc)
    config = parse_config(store.blobs.read_bytes(manifest.config.digest))
    try:
        fmt = detect_format(manifest)
    except OcillmError:
        fmt = "unknown"
    typer.echo(
        json.dumps(
            {
                "reference": str(r),
                "digest": desc.digest,
                "mediaType": desc.media_type,
                "format": fmt,
                "manifest": manifest.wire(),
                "config": config,
            },
            indent=2,
            ensure_ascii=False,
        )
    )


@app.command()
def tag(
    ctx: typer.Context,
    source: str = typer.Argument(..., metavar="SOURCE", help="Existing image."),
    target: str = typer.Argument(..., metavar="TARGET", help="New reference."),
) -> None:
    """Give an image another name (no data is copied)."""
    store = open_store(ctx)
    src, dst = store.parse(source), store.parse(target)
    store.tag(dst, store.resolve(src))
    typer.echo(f"copied '{store.display(src)}' to '{store.display(dst)}'")


app.command("cp", help="Alias of tag.")(tag)


@app.command()
def rm(
    ctx: typer.Context,
    references: list[str] = typer.Argument(..., metavar="REF", help="Images to remove."),
) -> None:
    """Remove images; blobs no other image uses are deleted."""
    store = open_store(ctx)
    failed: list[OcillmError] = []
    for text in references:
        try:
            r = store.parse(text)
            store.remove(r)
            typer.echo(f"deleted '{store.display(r)}'")
        except OcillmError as e:
            failed.append(e)
    if failed:
        for error in failed[:-1]:
            typer.echo(f"Error: {error}", err=True)
        raise failed[-1]


@app.command()
def prune(
    ctx: typer.Context,
    ingest: bool = typer.Option(
        False,
        "--ingest",
        help="Also remove every partial download no pull is writing now (not only stale ones).",
    ),
) -> None:
    """Delete blobs no image references, and temp files and downloads nobody will finish."""
    pruned = open_store(ctx).collect(ingest=ingest)
    typer.echo(f"deleted {pruned.blobs} unreferenced blobs, freed {human_bytes(pruned.blob_bytes)}")
    for line in prune_ingest_lines(pruned.ingest):
        typer.echo(line)


def prune_ingest_lines(r: Reclaimed) -> list[str]:
    """What prune did in ``ingest/``, and what it kept for resuming (nothing when all clean)."""
    lines = []
    done = []
    if r.temp_files:
        done.append(_count(r.temp_files, "abandoned temp file"))
    if r.partials:
        done.append(_count(r.partials, "partial download"))
    if done:
        lines.append(f"removed {' and '.join(done)}, freed {human_bytes(r.freed)}")
    if r.kept_partials:
        lines.append(
            f"kept {_count(r.kept_partials, 'partial download')} "
            f"({human_bytes(r.kept_partial_bytes)}) so a pull can resume; "
            f"`ocillm prune --ingest` removes {'it' if r.kept_partials == 1 else 'them'} now"
        )
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

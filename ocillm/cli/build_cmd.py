"""``ocillm build`` and ``ocillm lint``."""

from __future__ import annotations

from pathlib import Path

import typer

from ocillm.cli.app import app
from ocillm.cli.common import cli_settings, open_store, parse_labels
from ocillm.cli.extras import require_serve_extra
from ocillm.cli.output import Mode, emit_json, mode_of, print_warning, reporter, stderr
from ocillm.errors import UsageError
from ocillm.image import WRITABLE_FORMATS
from ocillm.oci.reference import Reference


def _modelfile_path(file: Path | None, context: Path | None) -> Path:
    if file is not None:
        return file
    base = context or Path.cwd()
    return base / "Modelfile"


@app.command()
def build(
    ctx: typer.Context,
    context: Path | None = typer.Argument(
        None,
        metavar="CONTEXT",
        help="Directory FROM/ADAPTER paths resolve against (default: the Modelfile's).",
    ),
    file: Path | None = typer.Option(
        None, "-f", "--file", metavar="FILE", help="Modelfile (default ./Modelfile)."
    ),
    tag: list[str] = typer.Option(
        [], "-t", "--tag", metavar="REF", help="Reference to tag the image with (repeatable)."
    ),
    fmt: str = typer.Option(
        "modelpack", "--format", metavar="FORMAT", help="modelpack (OCI, default) or ollama."
    ),
    # No -q: that is --quiet, as on push, pull, save and load (Ollama's `create -q` quantizes).
    quantize: str | None = typer.Option(
        None, "--quantize", metavar="TYPE", help="e.g. q4_K_M, q8_0 (needs the serve extra)."
    ),
    label: list[str] = typer.Option(
        [], "--label", metavar="KEY=VALUE", help="Manifest annotation (repeatable)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print NDJSON progress events."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image digest."),
    push: bool = typer.Option(False, "--push", help="Push every tag to its registry after."),
    modelcar: bool = typer.Option(
        False,
        "--modelcar",
        help="Also a runnable image with the files under /models/, both in one index.",
    ),
    platform: list[str] = typer.Option(
        [], "--platform", metavar="OS/ARCH", help="Modelcar platforms (default amd64 and arm64)."
    ),
    plain_http: bool = typer.Option(False, "--plain-http", help="Registries over plain HTTP."),
    ca_file: Path | None = typer.Option(
        None, "--ca-file", metavar="PEM", help="PEM bundle for registry TLS."
    ),
    policy: Path | None = typer.Option(
        None, "--policy", metavar="FILE", help="Trust policy for a FROM pulled from a registry."
    ),
) -> None:
    """Build an image from a Modelfile into the local store."""
    if quantize:
        require_serve_extra("ocillm build --quantize", ("llama_cpp",))
    from ocillm.build import build_image

    if not tag:
        raise UsageError("name the image with -t REF (for example -t my-model:1.0)")
    if fmt not in WRITABLE_FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(WRITABLE_FORMATS)}")
    if modelcar and fmt != "modelpack":
        raise UsageError("--modelcar needs --format modelpack (it links a ModelPack artifact)")
    if platform and not modelcar:
        raise UsageError("--platform applies to --modelcar only")
    cfg = cli_settings(ctx)
    store = open_store(ctx)
    refs = [store.parse(t) for t in tag]
    mode = mode_of(json_out, quiet)
    modelfile = _modelfile_path(file, context)
    with reporter(mode) as report:

        def pull_base(base: Reference) -> None:
            # The registry transport (oras, requests) loads only when a build needs it.
            from ocillm.cli.registry_cmd import transfer_options
            from ocillm.trust.admit import pull_checked

            options = transfer_options(cfg, 4, plain_http, ca_file)
            pull_checked(
                base, store, policy_path=policy or cfg.policy_file, options=options,
                report=report, warn=print_warning,
            )  # fmt: skip

        result = build_image(
            modelfile,
            refs,
            store=store,
            context=context,
            fmt=fmt,
            quantize=quantize,
            labels=parse_labels(label),
            report=report,
            pull_base=pull_base,
            source_date_epoch=cfg.source_date_epoch,
        )
        if modelcar:
            from ocillm.image.modelcar import DEFAULT_PLATFORMS, write_modelcar

            car = write_modelcar(
                store,
                result.descriptor,
                refs,
                platforms=platform or DEFAULT_PLATFORMS,
                source_date_epoch=cfg.source_date_epoch,
                report=report,
            )
            for r in refs:
                store.tag(r, car.index)
            result.descriptor = car.index
        pushed = []
        if push:
            from ocillm.cli.registry_cmd import transfer_options
            from ocillm.registry import push as push_image

            options = transfer_options(cfg, 4, plain_http, ca_file)
            pushed = [push_image(r, store, options=options, report=report) for r in refs]
    for warning in result.warnings:
        stderr.print(f"warning: {warning}", style="yellow")
    digest = result.descriptor.digest
    if mode is Mode.JSON:
        emit_json({"status": "built", "digest": digest, "references": [str(r) for r in refs]})
    elif mode is Mode.QUIET:
        typer.echo(digest)
    else:
        typer.echo(f"Built {digest} ({fmt}{' + modelcar index' if modelcar else ''})")
        for r in refs:
            typer.echo(f"Tagged {store.display(r)}")
    for p in pushed:
        if mode is Mode.HUMAN:
            typer.echo(f"Pushed {p.reference} {p.digest}")


@app.command()
def lint(
    ctx: typer.Context,
    context: Path | None = typer.Argument(
        None, metavar="CONTEXT", help="Directory paths resolve against."
    ),
    file: Path | None = typer.Option(
        None, "-f", "--file", metavar="FILE", help="Modelfile (default ./Modelfile)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the errors and warnings as JSON."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on warnings too (a FROM/ADAPTER file not on disk)."
    ),
) -> None:
    """Check a Modelfile's syntax and meaning without building; exit 1 with every error found.

    A FROM, ADAPTER or DRAFT file that is not there yet is a warning (exit 0, unless --strict).
    """
    from ocillm.build import lint_file
    from ocillm.store.blobs import BlobStore

    modelfile = _modelfile_path(file, context)
    # Looked up without opening the store, so that lint never creates one.
    blobs = BlobStore(cli_settings(ctx).models)
    result = lint_file(modelfile, context, has_blob=blobs.has)
    errors = result.errors
    if json_out:
        found = [("error", e) for e in errors] + [("warning", w) for w in result.warnings]
        found.sort(key=lambda item: (item[1].line, item[1].column))
        emit_json(
            [
                {
                    "file": e.filename,
                    "line": e.line,
                    "column": e.column,
                    "severity": severity,
                    "message": e.message,
                }
                for severity, e in found
            ]
        )
    else:
        for w in result.warnings:
            typer.echo(f"{w.location}: warning: {w.message}", err=True)
        for e in errors:
            typer.echo(e.format(), err=True)
        if not result.failed(strict=strict):
            counted = len(result.warnings)
            note = f" ({counted} warning{'s' if counted != 1 else ''})" if counted else ""
            typer.echo(f"{modelfile}: ok{note}")
    if result.failed(strict=strict):
        raise typer.Exit(1)

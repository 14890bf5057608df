"""``ocillm push``, ``pull``, ``login``, ``logout``, ``save``, ``load``: thin over ocillm.registry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ocillm.cli.app import app
from ocillm.cli.common import cli_settings, open_store
from ocillm.cli.output import (
    Mode,
    emit_json,
    mode_of,
    print_retry,
    print_warning,
    reporter,
    stderr,
)
from ocillm.errors import UsageError
from ocillm.image import WRITABLE_FORMATS
from ocillm.oci.reference import Reference

if TYPE_CHECKING:  # the transport (oras, requests) loads only when a command needs it
    from ocillm.config import Settings
    from ocillm.registry.options import TransferOptions

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}  # fmt: skip


def parse_size(text: str, flag: str = "--chunk-size") -> int:
    """``16M``, ``8MiB``, ``1048576`` -> bytes."""
    raw = text.strip().lower().removesuffix("ib").removesuffix("i")
    number = raw.rstrip("kmgb")
    unit = raw[len(number) :]
    if not number.isdigit() or unit not in _SIZE_UNITS or int(number) <= 0:
        raise UsageError(f"{flag} {text!r}: expected a size such as 16M or 1048576")
    return int(number) * _SIZE_UNITS[unit]


def transfer_options(
    settings: Settings,
    concurrency: int,
    plain_http: bool,
    ca_file: Path | None,
    chunk_size: str | None = None,
) -> TransferOptions:
    from ocillm.registry.options import TransferOptions

    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if ca_file is not None and not ca_file.is_file():
        raise UsageError(f"--ca-file {ca_file}: no such file")
    return TransferOptions.from_settings(
        settings,
        concurrency=concurrency,
        plain_http=plain_http,
        ca_file=ca_file,
        chunk_size=parse_size(chunk_size) if chunk_size else None,
        on_retry=print_retry,
    )


_CONCURRENCY = typer.Option(
    4, "--concurrency", metavar="N", help="Blobs (and ranges) in flight at once."
)
_PLAIN = typer.Option(False, "--plain-http", help="Talk HTTP, not HTTPS, to this registry.")
_CA = typer.Option(
    None, "--ca-file", metavar="PEM", help="PEM bundle to verify the registry's TLS with."
)
_JSON = typer.Option(False, "--json", help="Print NDJSON progress events.")
_QUIET = typer.Option(False, "--quiet", "-q", help="Print only the manifest digest.")


@app.command()
def pull(
    ctx: typer.Context,
    reference: str = typer.Argument(
        ..., metavar="REF", help="host/ns/model:tag, model@sha256:…, or a short name."
    ),
    concurrency: int = _CONCURRENCY,
    plain_http: bool = _PLAIN,
    ca_file: Path | None = _CA,
    json_out: bool = _JSON,
    quiet: bool = _QUIET,
    with_referrers: bool = typer.Option(
        False, "--with-referrers", help="Also bring signatures, SBOMs and attached files."
    ),
    policy: Path | None = typer.Option(
        None, "--policy", metavar="FILE", help="Trust policy (default $OCILLM_HOME/policy.json)."
    ),
) -> None:
    """Pull an image from a registry into the local store (resumes an interrupted pull)."""
    from ocillm.trust.admit import pull_checked

    store = open_store(ctx)
    r = store.parse(reference)
    cfg = cli_settings(ctx)
    options = transfer_options(cfg, concurrency, plain_http, ca_file)
    mode = mode_of(json_out, quiet)
    with reporter(mode) as report:
        result = pull_checked(
            r, store, policy_path=policy or cfg.policy_file, options=options, report=report,
            warn=print_warning, with_referrers=with_referrers,
        )  # fmt: skip
    if mode is Mode.QUIET:
        typer.echo(result.digest)
    elif mode is Mode.HUMAN:
        typer.echo(f"Pulled {store.display(r)} {result.digest} ({result.format})")


@app.command()
def push(
    ctx: typer.Context,
    reference: str = typer.Argument(
        ..., metavar="REF", help="The local image to push (its name says where)."
    ),
    target: str | None = typer.Argument(
        None, metavar="TARGET", help="Push under this name instead."
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        metavar="FORMAT",
        help="Convert first: modelpack or ollama (changes the manifest digest).",
    ),
    chunk_size: str | None = typer.Option(
        None, "--chunk-size", metavar="SIZE", help="Upload in PATCH chunks of this size (e.g. 16M)."
    ),
    modelcar: bool = typer.Option(
        False,
        "--modelcar",
        help="Push an index of the ModelPack artifact and a runnable image (files in /models/).",
    ),
    concurrency: int = _CONCURRENCY,
    plain_http: bool = _PLAIN,
    ca_file: Path | None = _CA,
    json_out: bool = _JSON,
    quiet: bool = _QUIET,
) -> None:
    """Push a local image to a registry."""
    from ocillm.registry import push as do_push

    if fmt is not None and fmt not in WRITABLE_FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(WRITABLE_FORMATS)}")
    store = open_store(ctx)
    source = store.parse(reference)
    dest = store.parse(target) if target else None
    options = transfer_options(cli_settings(ctx), concurrency, plain_http, ca_file, chunk_size)
    mode = mode_of(json_out, quiet)
    with reporter(mode) as report:
        if modelcar:
            _add_modelcar(ctx, source, dest, fmt, report)
        result = do_push(source, store, target=dest, fmt=fmt, options=options, report=report)
    if mode is Mode.QUIET:
        typer.echo(result.digest)
    elif mode is Mode.HUMAN:
        if result.converted_from:
            stderr.print(
                f"converted to {result.format}: the manifest digest changed from "
                f"{result.converted_from} to {result.digest}",
                style="yellow",
            )
        typer.echo(f"Pushed {result.reference} {result.digest} ({result.format})")


def _add_modelcar(
    ctx: typer.Context, source: Reference, dest: Reference | None, fmt: str | None, report: Any
) -> None:
    """Point ``source`` at a modelcar index of its ModelPack image (unless it already is one)."""
    from ocillm.image.modelcar import write_modelcar
    from ocillm.oci import mediatypes as mt

    if fmt not in (None, "modelpack"):
        raise UsageError("--modelcar needs the modelpack format")
    store = open_store(ctx)
    desc = store.resolve(source)
    if desc.media_type in mt.INDEX_TYPES:
        return
    names = [source] if dest is None else [dest]
    car = write_modelcar(
        store, desc, names, source_date_epoch=cli_settings(ctx).source_date_epoch, report=report
    )
    store.tag(source, car.index)
    stderr.print(f"{store.display(source)} now names the modelcar index {car.index.digest}")


@app.command()
def login(
    ctx: typer.Context,
    registry: str = typer.Argument(
        ..., metavar="REGISTRY", help="Registry host, e.g. ghcr.io or localhost:5000."
    ),
    username: str | None = typer.Option(
        None, "-u", "--username", metavar="USER", help="User name."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password (or token) from stdin."
    ),
    plain_http: bool = _PLAIN,
    ca_file: Path | None = _CA,
) -> None:
    """Check credentials with a registry and keep them in $OCILLM_HOME/auth.json."""
    from ocillm.registry import login as do_login
    from ocillm.registry.credentials import login_file

    if username is None:
        if not sys.stdin.isatty() or password_stdin:
            raise UsageError("name the user with -u USER")
        username = typer.prompt("Username")
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True)
    else:
        raise UsageError("pass the password on stdin with --password-stdin")
    if not password:
        raise UsageError("the password is empty")
    cfg = cli_settings(ctx)
    options = transfer_options(cfg, 1, plain_http, ca_file)
    path = do_login(registry, username, password, login_file=login_file(cfg), options=options)
    typer.echo(f"Login Succeeded (credentials kept in {path})")


@app.command()
def logout(
    ctx: typer.Context,
    registry: str = typer.Argument(..., metavar="REGISTRY", help="Registry host."),
) -> None:
    """Forget the credentials `ocillm login` kept for a registry."""
    from ocillm.registry import logout as do_logout
    from ocillm.registry.credentials import login_file

    if do_logout(registry, login_file=login_file(cli_settings(ctx))):
        typer.echo(f"Removed login credentials for {registry}")
    else:
        typer.echo(f"Not logged in to {registry}")


@app.command()
def save(
    ctx: typer.Context,
    references: list[str] = typer.Argument(..., metavar="REF", help="Images to save."),
    output: Path = typer.Option(
        ..., "-o", "--output", metavar="TAR", help="The tar file to write."
    ),
    json_out: bool = _JSON,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Write images to an OCI-layout tar (for air-gapped sites; `ocillm load` reads it)."""
    from ocillm.registry import save as do_save

    store = open_store(ctx)
    refs = [store.parse(r) for r in references]
    mode = mode_of(json_out, quiet)
    with reporter(mode) as report:
        saved = do_save(refs, store, output, report=report)
    if mode is Mode.HUMAN:
        for r, digest in saved:
            typer.echo(f"Saved {store.display(r)} {digest}")


@app.command()
def load(
    ctx: typer.Context,
    input: Path = typer.Option(
        ..., "-i", "--input", metavar="TAR", help="An OCI-layout tar (from `ocillm save`)."
    ),
    json_out: bool = _JSON,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Import the images of an OCI-layout tar into the local store, verifying every blob."""
    from ocillm.registry import load as do_load

    store = open_store(ctx)
    mode = mode_of(json_out, quiet)
    with reporter(mode) as report:
        loaded = do_load(input, store, report=report)
    if mode is Mode.JSON:
        emit_json({"loaded": [{"name": str(r), "digest": d} for r, d in loaded]})
    elif mode is Mode.HUMAN:
        for r, digest in loaded:
            typer.echo(f"Loaded {store.display(r)} {digest}")

"""``ocillm key generate``, ``sign``, ``verify``, ``attach``, ``discover``: thin over ocillm.trust."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ocillm.cli.app import app
from ocillm.cli.common import cli_settings, open_store, parse_labels
from ocillm.cli.output import emit_json, stderr
from ocillm.cli.registry_cmd import transfer_options
from ocillm.errors import UsageError

if TYPE_CHECKING:
    from ocillm.registry.client import RegistryClient
    from ocillm.registry.options import TransferOptions

key_app = typer.Typer(
    help="Signing keys (ECDSA P-256 PEM, cosign's key type).", no_args_is_help=True
)
app.add_typer(key_app, name="key")

_REF = typer.Argument(..., metavar="REF", help="host/ns/model:tag or model@sha256:….")
_PLAIN = typer.Option(False, "--plain-http", help="Talk HTTP, not HTTPS, to this registry.")
_CA = typer.Option(None, "--ca-file", metavar="PEM", help="PEM bundle for the registry's TLS.")
_LOCAL = typer.Option(
    False, "--local", help="Use the local store only (no network): the copy `load` or `pull` made."
)


def _password(flag: bool, what: str) -> bytes | None:
    if not flag:
        return None
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise UsageError(f"{what}: the password on stdin is empty")
    return value.encode()


def _options(ctx: typer.Context, plain_http: bool, ca_file: Path | None) -> TransferOptions:
    return transfer_options(cli_settings(ctx), 1, plain_http, ca_file)


def _pull_client(ref: Any, options: TransferOptions) -> RegistryClient:
    from ocillm.registry.client import RegistryClient

    client = RegistryClient(ref, options, actions="pull")
    client.authorize()
    return client


@key_app.command("generate")
def key_generate(
    output: Path = typer.Option(
        Path("cosign"), "--output", "-o", metavar="PREFIX", help="Writes PREFIX.key and PREFIX.pub."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Encrypt the private key with a password read from stdin."
    ),
    force: bool = typer.Option(False, "--force", help="Replace existing key files."),
) -> None:
    """Write a new signing key pair (PKCS#8 PEM private key, PEM public key)."""
    from ocillm.trust.keys import write_pair

    private, public = write_pair(output, _password(password_stdin, "--password-stdin"), force=force)
    typer.echo(f"Private key written to {private}")
    typer.echo(f"Public key written to {public}")


@app.command()
def sign(
    ctx: typer.Context,
    reference: str = _REF,
    key: Path = typer.Option(..., "--key", metavar="FILE", help="The private key (PEM)."),
    key_password_stdin: bool = typer.Option(
        False, "--key-password-stdin", help="Read the key's password from stdin."
    ),
    local: bool = typer.Option(False, "--local", help="Sign the store's copy only; push nothing."),
    plain_http: bool = _PLAIN,
    ca_file: Path | None = _CA,
) -> None:
    """Sign an image's manifest digest, cosign-compatible, in the registry (and the store)."""
    from ocillm.trust.keys import load_private
    from ocillm.trust.publish import sign_image

    private = load_private(key, _password(key_password_stdin, str(key)))
    store = open_store(ctx)
    ref = store.parse(reference)
    options = None if local else _options(ctx, plain_http, ca_file)
    result = sign_image(ref, store, private, options=options, local_only=local)
    stderr.print(f"signature stored in: {', '.join(result.stored)}")
    typer.echo(f"Signed {store.display(ref)} {result.subject.digest}")


@app.command()
def verify(
    ctx: typer.Context,
    reference: str = _REF,
    keys: list[Path] = typer.Option(
        ..., "--key", metavar="FILE", help="A trusted public key (PEM); repeat for more."
    ),
    local: bool = _LOCAL,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    plain_http: bool = _PLAIN,
    ca_file: Path | None = _CA,
) -> None:
    """Check that a signature by one of the keys covers exactly this manifest (exit 1 if not)."""
    from ocillm.trust.subject import local_subject, remote_subject
    from ocillm.trust.verify import decide, load_keys, local_candidates, remote_candidates

    trusted = load_keys(keys)
    store = open_store(ctx)
    ref = store.parse(reference)
    if local:
        digest = local_subject(store, ref).digest
        found = local_candidates(store, digest)
    else:
        client = _pull_client(ref, _options(ctx, plain_http, ca_file))
        digest = remote_subject(client, ref).digest
        found = remote_candidates(client, digest)
    result = decide(store.display(ref), digest, found, trusted)
    if json_out:
        emit_json(
            {
                "reference": str(ref),
                "digest": result.digest,
                "key": str(result.key),
                "docker-reference": result.docker_reference,
                "source": result.origin,
            }
        )
        return
    stderr.print(f"Verified {store.display(ref)}: signed by {result.key} ({result.origin})")
    typer.echo(result.digest)


@app.command()
def attach(
    ctx: typer.Context,
    reference: str = _REF,
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="Files to attach."),
    artifact_type: str = typer.Option(
        ..., "--artifact-type", metavar="TYPE", help="e.g. application/spdx+json."
    ),
    media_type: str = typer.Option(
        "application/octet-stream", "--media-type", metavar="TYPE", help="Each file's media type."
    ),
    annotation: list[str] | None = typer.Option(
        None, "--annotation", "-a", metavar="KEY=VALUE", help="A manifest annotation; repeatable."
    ),
    local: bool = typer.Option(False, "--local", help="Attach in the store only; push nothing."),
    plain_http: bool = _PLAIN,
    ca_file: Path | None = _CA,
) -> None:
    """Attach files (an SBOM, a model card, an eval report) to an image as an OCI 1.1 referrer."""
    from ocillm.trust.publish import attach_files

    for path in files:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    annotations = dict(parse_labels(annotation))
    store = open_store(ctx)
    ref = store.parse(reference)
    options = None if local else _options(ctx, plain_http, ca_file)
    result = attach_files(
        ref, store, artifact_type, files, media_type=media_type, annotations=annotations,
        options=options, local_only=local,
    )  # fmt: skip
    stderr.print(f"stored in: {', '.join(result.stored)}")
    typer.echo(f"Attached {result.manifest} to {store.display(ref)} {result.subject.digest}")


@app.command()
def discover(
    ctx: typer.Context,
    reference: str = _REF,
    local: bool = _LOCAL,
    json_out: bool = typer.Option(False, "--json", help="Print the referrers as JSON."),
    plain_http: bool = _PLAIN,
    ca_file: Path | None = _CA,
) -> None:
    """List what refers to an image: signatures, SBOMs, attached files."""
    from ocillm.trust.discover import discover_local, discover_remote
    from ocillm.trust.subject import local_subject, remote_subject

    store = open_store(ctx)
    ref = store.parse(reference)
    if local:
        digest = local_subject(store, ref).digest
        found = discover_local(store, digest)
    else:
        client = _pull_client(ref, _options(ctx, plain_http, ca_file))
        digest = remote_subject(client, ref).digest
        found = discover_remote(client, digest)
    if json_out:
        emit_json(
            {
                "reference": str(ref),
                "digest": digest,
                "referrers": [
                    {
                        "artifactType": f.artifact_type,
                        "digest": f.digest,
                        "size": f.size,
                        "annotations": f.annotations,
                        "source": f.source,
                    }
                    for f in found
                ],
            }
        )
        return
    typer.echo(f"{store.display(ref)}@{digest}")
    if not found:
        typer.echo("  (no referrers)")
    for f in found:
        notes = " ".join(f"{k}={v}" for k, v in sorted(f.annotations.items()))
        typer.echo(f"  {f.artifact_type}  {f.digest}  [{f.source}]{'  ' + notes if notes else ''}")

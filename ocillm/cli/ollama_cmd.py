"""``ocillm import --from-ollama`` and ``ocillm export --to-ollama``: thin over ocillm.ollama_store."""

from __future__ import annotations

from pathlib import Path

import typer

from ocillm.cli.app import app
from ocillm.cli.common import cli_settings, open_store
from ocillm.cli.output import emit_json, human_bytes
from ocillm.errors import UsageError

_JSON = typer.Option(False, "--json", help="Print the result as JSON.")


def _split(args: list[str], default: Path) -> tuple[Path, list[str]]:
    """A path-looking argument (``/…``, ``./…``, ``~…``) is the Ollama store; the rest are names."""
    paths = [a for a in args if a.startswith(("/", ".", "~"))]
    if len(paths) > 1:
        raise UsageError(f"more than one Ollama store given: {', '.join(paths)}")
    names = [a for a in args if a not in paths]
    return (Path(paths[0]).expanduser() if paths else default), names


def _ways(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {how}" for how, n in sorted(counts.items())) or "nothing"


@app.command(name="import")
def import_(
    ctx: typer.Context,
    args: list[str] | None = typer.Argument(
        None, metavar="[DIR] [MODEL]...", help="Ollama store (a path) and models (default: all)."
    ),
    from_ollama: bool = typer.Option(
        False, "--from-ollama", help="Import from an Ollama store (default $OLLAMA_MODELS)."
    ),
    json_out: bool = _JSON,
) -> None:
    """Import models from an Ollama store (blobs linked when on the same filesystem)."""
    from ocillm.ollama_store import import_ollama

    if not from_ollama:
        raise UsageError("say where from: ocillm import --from-ollama [DIR] [MODEL]...")
    cfg = cli_settings(ctx)
    root, names = _split(list(args or []), cfg.ollama_models or Path.home() / ".ollama/models")
    store = open_store(ctx)
    done = import_ollama(store, root, [store.parse(n) for n in names])
    if json_out:
        emit_json(
            {
                "imported": [
                    {"name": str(i.reference), "digest": i.digest, "blobs": dict(i.blobs)}
                    for i in done
                ]
            }
        )
        return
    for i in done:
        typer.echo(
            f"{store.display(i.reference)}  {i.digest[7:19]}  {human_bytes(i.size)}  "
            f"(blobs: {_ways(dict(i.blobs))})"
        )
    if not done:
        typer.echo(f"no models in {root}")


@app.command(name="export")
def export(
    ctx: typer.Context,
    args: list[str] = typer.Argument(
        ..., metavar="REF... [DIR]", help="Images to export, and the Ollama store (a path)."
    ),
    to_ollama: bool = typer.Option(
        False, "--to-ollama", help="Write into an Ollama store (default $OLLAMA_MODELS)."
    ),
    json_out: bool = _JSON,
) -> None:
    """Write images into an Ollama store, in Ollama's format, for `ollama list` and `ollama run`."""
    from ocillm.ollama_store import export_ollama

    if not to_ollama:
        raise UsageError("say where to: ocillm export --to-ollama REF... [DIR]")
    cfg = cli_settings(ctx)
    root, names = _split(args, cfg.ollama_models or Path.home() / ".ollama/models")
    if not names:
        raise UsageError("name at least one image to export")
    store = open_store(ctx)
    done = export_ollama(store, [store.parse(n) for n in names], root)
    if json_out:
        emit_json(
            {
                "exported": [
                    {
                        "name": str(e.reference),
                        "digest": e.digest,
                        "path": str(e.path),
                        "converted_from": e.converted_from,
                        "blobs": dict(e.blobs),
                    }
                    for e in done
                ]
            }
        )
        return
    for e in done:
        note = f", converted from {e.converted_from}" if e.converted_from else ""
        typer.echo(f"{store.display(e.reference)} -> {e.path} ({e.digest}{note})")

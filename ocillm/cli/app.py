"""The ``ocillm`` command: typer commands stay thin; the library does the work."""

from __future__ import annotations

import errno
import os
import sys
import traceback
from pathlib import Path

import typer

from ocillm import __version__
from ocillm.config import Settings, parse_bool
from ocillm.errors import OcillmError

app = typer.Typer(
    name="ocillm",
    help="Build, ship and serve local LLMs as OCI images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, like Ollama's: rich panels label every flag <bool> and every list <list[str]>.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ocillm version {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-v", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Build, ship and serve local LLMs as OCI images."""


def _register() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    from ocillm.cli import (  # noqa: F401
        build_cmd,
        images_cmd,
        kube_cmd,
        ollama_cmd,
        registry_cmd,
        serve_cmd,
        trust_cmd,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 1 (usage errors 2), never a traceback."""
    _register()
    try:
        cfg = Settings.from_env()  # the one read of the environment; commands get ctx.obj
    except OcillmError as e:
        # The settings are what is broken, so OCILLM_DEBUG is read on its own here.
        if parse_bool(os.environ.get("OCILLM_DEBUG")):
            traceback.print_exc()
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    debug = cfg.debug
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting.
        result = app(args=argv, prog_name="ocillm", standalone_mode=False, obj=cfg)
        return result if isinstance(result, int) else 0
    except OcillmError as e:
        if debug:
            traceback.print_exc()
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        if _is_usage_error(e):
            e.show()  # type: ignore[attr-defined]
            return int(getattr(e, "exit_code", 2) or 2)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            # A write the store did not translate: still no "internal error" for a full disk.
            from ocillm.store.space import disk_full

            full = disk_full(e, Path(e.filename).parent if e.filename else cfg.models)
            if debug:
                traceback.print_exc()
            print(f"Error: {full}", file=sys.stderr)
            return full.exit_code
        if debug:
            traceback.print_exc()
        else:
            print(f"Error: internal error: {type(e).__name__}: {e}", file=sys.stderr)
            print("Set OCILLM_DEBUG=1 for the traceback.", file=sys.stderr)
        return 1


def _is_usage_error(e: Exception) -> bool:
    """A click usage error, matched by shape: typer >= 0.2x vendors click (and the base install
    has no click of its own), older typers raise click's classes."""
    return (
        type(e).__module__.startswith(("typer.", "click."))
        and hasattr(e, "show")
        and hasattr(e, "exit_code")
    )

"""Commands that use the daemon: ``serve`` starts it; ``run``, ``ps`` and ``stop`` talk to it."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer

from ocillm.cli.app import app
from ocillm.cli.common import cli_settings
from ocillm.cli.extras import require_serve_extra
from ocillm.cli.output import human_bytes, human_time, table
from ocillm.cli.pictures import take_pictures
from ocillm.errors import OcillmError, UsageError


@app.command()
def serve(
    ctx: typer.Context,
    read_only: bool = typer.Option(
        False,
        "--read-only",
        help="Never write to the store (an image volume, a shared PVC); writes answer 403.",
    ),
    models: list[Path] = typer.Option(
        [],
        "--models",
        metavar="DIR",
        help="Store to serve instead of OCILLM_MODELS; repeat to serve several (read-only).",
    ),
    mirror_of: str | None = typer.Option(
        None,
        "--mirror-of",
        metavar="REGISTRY",
        help="Make /v2/ a pull-through cache of REGISTRY (OCILLM_MIRROR_OF).",
    ),
) -> None:
    """Start the daemon: the Ollama API on OCILLM_HOST (default 127.0.0.1:11434).

    Variables: OCILLM_HOST, OCILLM_ORIGINS, OCILLM_KEEP_ALIVE, OCILLM_MAX_QUEUE,
    OCILLM_NUM_PARALLEL, OCILLM_MAX_LOADED_MODELS, OCILLM_LOAD_TIMEOUT, OCILLM_CONTEXT_LENGTH,
    OCILLM_SCHED_SPREAD, OCILLM_GPU_OVERHEAD, OCILLM_RUNNER_UNIX_SOCKET, OCILLM_API_KEY,
    OCILLM_MODELS, OCILLM_READ_ONLY. SIGINT/SIGTERM stop it and unload every model.
    """
    require_serve_extra("ocillm serve")
    from dataclasses import replace

    from ocillm.server.app import serve as run_server

    cfg = cli_settings(ctx)
    if models:
        cfg = replace(cfg, models=models[0], extra_models=tuple(models[1:]))
    if read_only:
        cfg = replace(cfg, read_only=True)
    if mirror_of:
        cfg = replace(cfg, mirror_of=mirror_of)
    run_server(cfg)


# --- ps, stop -----------------------------------------------------------------------------------


def _client(ctx: typer.Context) -> Any:
    from ocillm.client import DaemonClient

    return DaemonClient(cli_settings(ctx))


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def until_text(expires_at: str, now: datetime | None = None) -> str:
    """Ollama's UNTIL column: "4 minutes from now", "Forever", "Stopping..."."""
    when = _parse_time(expires_at)
    now = now or datetime.now(timezone.utc)
    if when is None:
        return "Never"
    if when <= now:
        return "Stopping..."
    if (when - now).days > 365 * 20:
        return "Forever"
    return human_time(when, now)


def processor_text(size: int, size_vram: int) -> str:
    from ocillm.gpu import processor_string

    return processor_string(size, size_vram)


@app.command()
def ps(
    ctx: typer.Context,
    prefix: str | None = typer.Argument(
        None, metavar="PREFIX", help="Only names starting with this."
    ),
) -> None:
    """List the models loaded now (NAME, ID, SIZE, PROCESSOR, CONTEXT, UNTIL)."""
    require_serve_extra("ocillm ps")
    with _client(ctx) as client:
        models = client.ps()
    rows = []
    for m in models:
        if prefix and not str(m["name"]).startswith(prefix):
            continue
        rows.append(
            [
                str(m["name"]),
                str(m.get("digest", ""))[:12],
                human_bytes(int(m.get("size", 0))),
                processor_text(int(m.get("size", 0)), int(m.get("size_vram", 0))),
                str(m.get("context_length", "")),
                until_text(str(m.get("expires_at", ""))),
            ]
        )
    typer.echo(table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows))


@app.command()
def stop(
    ctx: typer.Context,
    reference: str = typer.Argument(..., metavar="MODEL", help="The model to unload."),
) -> None:
    """Unload a model from the daemon now."""
    require_serve_extra("ocillm stop")
    from ocillm.client import DaemonError

    with _client(ctx) as client:
        try:
            for _ in client.generate(model=reference, keep_alive=0, stream=False):
                pass
        except DaemonError as err:
            if err.status == 404:
                raise OcillmError(f'couldn\'t find model "{reference}" to stop') from None
            raise


# --- run ----------------------------------------------------------------------------------------


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: "1.234567891s", "12.5ms", "1m2.5s", "0s"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trim(ns / 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trim(ns / 1_000_000)}ms"
    seconds = ns / 1e9
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = ""
    if hours:
        text += f"{hours}h"
    if hours or minutes:
        text += f"{minutes}m"
        seconds = rest / 1e9
    return f"{sign}{text}{_trim(seconds, 9)}s"


def _trim(value: float, digits: int = 6) -> str:
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def metrics_summary(final: dict[str, Any]) -> str:
    """Ollama's ``--verbose`` summary (printed on stderr)."""
    lines = []
    total = int(final.get("total_duration") or 0)
    load = int(final.get("load_duration") or 0)
    p_count = int(final.get("prompt_eval_count") or 0)
    p_dur = int(final.get("prompt_eval_duration") or 0)
    e_count = int(final.get("eval_count") or 0)
    e_dur = int(final.get("eval_duration") or 0)
    if total > 0:
        lines.append(f"total duration:       {go_duration(total)}")
    if load > 0:
        lines.append(f"load duration:        {go_duration(load)}")
    if p_count > 0:
        lines.append(f"prompt eval count:    {p_count} token(s)")
    if p_dur > 0:
        lines.append(f"prompt eval duration: {go_duration(p_dur)}")
        lines.append(f"prompt eval rate:     {p_count / (p_dur / 1e9):.2f} tokens/s")
    if e_count > 0:
        lines.append(f"eval count:           {e_count} token(s)")
    if e_dur > 0:
        lines.append(f"eval duration:        {go_duration(e_dur)}")
        lines.append(f"eval rate:            {e_count / (e_dur / 1e9):.2f} tokens/s")
    return "\n".join(lines)


class Session:
    """What a ``run`` conversation carries: options, system, format, messages, verbosity."""

    def __init__(
        self,
        model: str,
        *,
        verbose: bool,
        fmt: str | None,
        keep_alive: str | None,
        think: bool | str | None,
    ) -> None:
        self.model = model
        self.verbose = verbose
        self.format = fmt
        self.keep_alive = keep_alive
        self.think = think
        self.options: dict[str, Any] = {}
        self.system: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.vision = False  # the model reads pictures: paths in a prompt are sent as images

    def request(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "format": self.format,
            "keep_alive": self.keep_alive,
            "options": self.options or None,
            "think": self.think,
        }


def _stream_text(
    chunks: Iterator[dict[str, Any]], text_of: Callable[[dict[str, Any]], str]
) -> tuple[str, dict[str, Any]]:
    parts: list[str] = []
    final: dict[str, Any] = {}
    for chunk in chunks:
        piece = text_of(chunk)
        if piece:
            parts.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        if chunk.get("done"):
            final = chunk
    return "".join(parts), final


def _ensure_model(client: Any, reference: str, insecure: bool) -> dict[str, Any]:
    """``show`` the model; when the daemon does not have it, pull it through the daemon."""
    from ocillm.client import DaemonError

    try:
        data: dict[str, Any] = client.show(reference)
        return data
    except DaemonError as err:
        if err.status != 404:
            raise
    last = ""
    for event in client.pull(reference, insecure=insecure):
        status = str(event.get("status", ""))
        if status != last:
            print(status, file=sys.stderr, flush=True)
            last = status
    shown: dict[str, Any] = client.show(reference)
    return shown


def _think_value(text: str | None) -> bool | str | None:
    if text is None:
        return None
    if text in ("true", "false"):
        return text == "true"
    return text


@app.command()
def run(
    ctx: typer.Context,
    reference: str = typer.Argument(..., metavar="MODEL", help="The model to run."),
    prompt: list[str] | None = typer.Argument(
        None, metavar="PROMPT", help="A prompt; without one, a REPL."
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Print timings after each answer."),
    fmt: str | None = typer.Option(
        None, "--format", metavar="FORMAT", help='Response format ("json").'
    ),
    keepalive: str | None = typer.Option(
        None, "--keepalive", metavar="DURATION", help="How long to keep it loaded."
    ),
    think: str | None = typer.Option(
        None, "--think", metavar="LEVEL", help="true, false, low, medium or high."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Pull over plain HTTP if missing."),
) -> None:
    """Run a model: one answer to PROMPT (or stdin), or an interactive chat."""
    require_serve_extra("ocillm run")
    if fmt not in (None, "", "json"):
        raise UsageError(f'--format {fmt!r}: only "json" is supported')
    session = Session(
        reference, verbose=verbose, fmt=fmt or None, keep_alive=keepalive, think=_think_value(think)
    )
    prompts = list(prompt or [])
    interactive = sys.stdin.isatty()
    if not interactive:
        piped = sys.stdin.read()
        if piped:
            prompts.insert(0, piped)
    if prompts:
        interactive = False
    with _client(ctx) as client:
        info = _ensure_model(client, reference, insecure)
        session.vision = "vision" in (info.get("capabilities") or [])
        if not interactive:
            _one_shot(client, session, " ".join(prompts))
            return
        Repl(client, session, info, history_file=cli_settings(ctx).home / "history").loop()


def _one_shot(client: Any, session: Session, text: str) -> None:
    body: dict[str, Any] = {**session.request(), "prompt": text}
    if session.vision:
        body["prompt"], images = take_pictures(text)
        if images:
            body["images"] = images
    answer, final = _stream_text(client.generate(**body), lambda c: str(c.get("response") or ""))
    if answer and not answer.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    if session.verbose and final:
        print(metrics_summary(final), file=sys.stderr, flush=True)


HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command

Use \"\"\" to begin a multi-line message.
"""

SET_HELP = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
"""

SHOW_HELP = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""


class Repl:
    """Ollama's interactive mode: streamed answers, ``\"\"\"`` blocks, ``/set``, ``/show``."""

    def __init__(
        self, client: Any, session: Session, info: dict[str, Any], *, history_file: Path
    ) -> None:
        self.client = client
        self.session = session
        self.info = info
        self.history_file = history_file
        self.history = True

    def _readline(self) -> Any:
        try:
            import readline
        except ImportError:  # pragma: no cover - Windows without pyreadline
            return None
        try:
            self.history_file.parent.mkdir(parents=True, exist_ok=True)
            if self.history_file.exists():
                readline.read_history_file(str(self.history_file))
        except OSError:
            pass
        return readline

    def _save_history(self, readline: Any) -> None:
        if readline is None or not self.history:
            return
        with contextlib.suppress(OSError):
            readline.write_history_file(str(self.history_file))

    def read(self) -> str | None:
        """One message (a ``\"\"\"`` block spans lines); None at end of input."""
        try:
            line = input(">>> ")
        except EOFError:
            return None
        if not line.lstrip().startswith('"""'):
            return line
        first = line.lstrip()[3:]
        if first.endswith('"""') and len(first) >= 3:
            return first[:-3]
        lines = [first] if first else []
        while True:
            try:
                more = input("... ")
            except EOFError:
                return "\n".join(lines)
            if more.rstrip().endswith('"""'):
                lines.append(more.rstrip()[:-3])
                return "\n".join(lines).rstrip("\n") if lines else ""
            lines.append(more)

    def loop(self) -> None:
        readline = self._readline()
        # Load the model first, as Ollama does, so the first answer is not slowed by the load.
        for _ in self.client.generate(**self.session.request(), prompt=""):
            pass
        try:
            while True:
                try:
                    text = self.read()
                except KeyboardInterrupt:
                    print("\nUse Ctrl + d or /bye to exit.")
                    continue
                if text is None:
                    print()
                    return
                if not text.strip():
                    continue
                if text.startswith("/"):
                    if not self.command(text.strip()):
                        return
                    continue
                self.say(text)
        finally:
            self._save_history(readline)

    def say(self, text: str) -> None:
        s = self.session
        message: dict[str, Any] = {"role": "user", "content": text}
        if s.vision:
            message["content"], images = take_pictures(text)
            if images:
                message["images"] = images
        s.messages.append(message)
        messages = list(s.messages)
        if s.system:
            messages.insert(0, {"role": "system", "content": s.system})
        body = {**s.request(), "messages": messages}
        try:
            answer, final = _stream_text(
                self.client.chat(**body),
                lambda c: str((c.get("message") or {}).get("content") or ""),
            )
        except KeyboardInterrupt:
            s.messages.pop()
            print()
            return
        print("\n")
        s.messages.append({"role": "assistant", "content": answer})
        if s.verbose and final:
            print(metrics_summary(final), file=sys.stderr, flush=True)

    def command(self, line: str) -> bool:
        """Handle a ``/`` command; False means leave."""
        words = line.split()
        name = words[0]
        if name in ("/bye", "/exit"):
            return False
        if name in ("/?", "/help"):
            topic = words[1] if len(words) > 1 else ""
            print({"set": SET_HELP, "show": SHOW_HELP}.get(topic.lstrip("/"), HELP))
        elif name == "/clear":
            self.session.messages = []
            print("Cleared session context")
        elif name == "/set":
            self.set(line, words[1:])
        elif name == "/show":
            self.show(words[1:])
        else:
            print(f"Unknown command '{name}'. Type /? for help")
        return True

    def set(self, line: str, args: list[str]) -> None:
        s = self.session
        if not args:
            print(SET_HELP)
            return
        what = args[0]
        if what == "parameter":
            if len(args) < 3:
                print("Usage:\n  /set parameter <name> <value>")
                return
            from ocillm.modelfile.params import convert_parameter

            name, raw = args[1], " ".join(args[2:])
            try:
                value = convert_parameter(name, raw)
            except ValueError as err:
                print(f"Couldn't set parameter: {err}")
                return
            if isinstance(value, list):
                value = [*s.options.get(name, []), *value]
            s.options[name] = value
            print(f"Set parameter '{name}' to '{raw}'")
        elif what == "system":
            text = line.split("system", 1)[1].strip()
            if text.startswith('"') and text.endswith('"') and len(text) >= 2:
                text = text[1:-1]
            s.system = text
            print("Set system message.")
        elif what == "verbose":
            s.verbose = True
            print("Set 'verbose' mode.")
        elif what == "quiet":
            s.verbose = False
            print("Set 'quiet' mode.")
        elif what == "format" and args[1:] == ["json"]:
            s.format = "json"
            print("Set format to 'json' mode.")
        elif what == "noformat":
            s.format = None
            print("Disabled format.")
        elif what == "history":
            self.history = True
            print("Set 'history' mode.")
        elif what == "nohistory":
            self.history = False
            print("Set 'nohistory' mode.")
        else:
            print(f"Unknown command '/set {what}'. Type /? for help")

    def show(self, args: list[str]) -> None:
        info = self.info
        if not args:
            print(SHOW_HELP)
            return
        what = args[0]
        if what == "info":
            details = info.get("details") or {}
            print(f"  Model\n    architecture    {details.get('family', '')}")
            print(f"    parameters      {details.get('parameter_size', '')}")
            print(f"    quantization    {details.get('quantization_level', '')}")
            caps = info.get("capabilities") or []
            if caps:
                print("\n  Capabilities")
                for cap in caps:
                    print(f"    {cap}")
            print()
        elif what == "license":
            print(info.get("license") or "No license was specified for this model.")
        elif what == "modelfile":
            print(info.get("modelfile", ""))
        elif what == "parameters":
            params = str(info.get("parameters") or "")
            extra = "\n".join(f"{k:<30} {json.dumps(v)}" for k, v in self.session.options.items())
            text = "\n".join(p for p in (params, extra) if p)
            print(f"Model defined parameters:\n{text}" if text else "No parameters were specified.")
        elif what == "system":
            print(self.session.system or info.get("system") or "No system message was specified.")
        elif what == "template":
            print(info.get("template") or "No prompt template was specified.")
        else:
            print(f"Unknown command '/show {what}'. Type /? for help")

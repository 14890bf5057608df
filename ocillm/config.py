"""Configuration: every ``OCILLM_*`` variable is read here, once, into one settings object.

The README's table lists the same variables; keep the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_REGISTRY = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_HOST = "127.0.0.1:11434"


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        from ocillm.errors import UsageError

        raise UsageError(f"{name}={raw!r}: expected an integer") from None


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        from ocillm.errors import UsageError

        raise UsageError(f"{name}={raw!r}: expected a number of seconds, 0 or more")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    models: Path
    default_registry: str = DEFAULT_REGISTRY
    debug: bool = False
    host: str = DEFAULT_HOST
    origins: tuple[str, ...] = ()
    keep_alive: str = "5m"
    max_queue: int = 512
    num_parallel: int = 1
    max_loaded_models: int = 0
    load_timeout: str = "5m"
    sched_spread: bool = False
    gpu_overhead: int = 0
    context_length: int = 0
    runner_unix_socket: bool = False
    runner_spare: bool = True
    insecure_registries: tuple[str, ...] = ()
    registry_retries: int = 5
    registry_backoff: float = 0.5
    registry_username: str | None = None
    registry_password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        home = Path(e.get("OCILLM_HOME") or Path.home() / ".ocillm").expanduser()
        models = Path(e.get("OCILLM_MODELS") or home / "models").expanduser()

        def _list(name: str) -> tuple[str, ...]:
            return tuple(p.strip() for p in e.get(name, "").split(",") if p.strip())

        return cls(
            home=home,
            models=models,
            default_registry=e.get("OCILLM_DEFAULT_REGISTRY", "").strip() or DEFAULT_REGISTRY,
            debug=_bool(e.get("OCILLM_DEBUG")),
            host=e.get("OCILLM_HOST", "").strip() or DEFAULT_HOST,
            origins=_list("OCILLM_ORIGINS"),
            keep_alive=e.get("OCILLM_KEEP_ALIVE", "").strip() or "5m",
            max_queue=_int(e, "OCILLM_MAX_QUEUE", 512),
            num_parallel=_int(e, "OCILLM_NUM_PARALLEL", 1),
            max_loaded_models=_int(e, "OCILLM_MAX_LOADED_MODELS", 0),
            load_timeout=e.get("OCILLM_LOAD_TIMEOUT", "").strip() or "5m",
            sched_spread=_bool(e.get("OCILLM_SCHED_SPREAD")),
            gpu_overhead=_int(e, "OCILLM_GPU_OVERHEAD", 0),
            context_length=_int(e, "OCILLM_CONTEXT_LENGTH", 0),
            runner_unix_socket=_bool(e.get("OCILLM_RUNNER_UNIX_SOCKET")),
            runner_spare=_bool(e.get("OCILLM_RUNNER_SPARE"), default=True),
            insecure_registries=_list("OCILLM_INSECURE_REGISTRIES"),
            registry_retries=max(1, _int(e, "OCILLM_REGISTRY_RETRIES", 5)),
            registry_backoff=_float(e, "OCILLM_REGISTRY_BACKOFF", 0.5),
            registry_username=e.get("OCILLM_REGISTRY_USERNAME") or None,
            registry_password=e.get("OCILLM_REGISTRY_PASSWORD") or None,
            api_key=e.get("OCILLM_API_KEY") or None,
        )


def settings() -> Settings:
    """The settings of this process, read from the environment at call time."""
    return Settings.from_env()

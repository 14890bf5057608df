"""Configuration: every variable ocillm reads is read here, once, into one settings object.

:meth:`Settings.from_env` is called at the edges only (``ocillm``'s start, ``serve``'s start,
a benchmark's start); everything below receives the :class:`Settings`, or the few values it
needs, as arguments and never looks at ``os.environ``. The README's table lists the same
variables; keep the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The naming defaults belong to the vocabulary layer; re-exported here for the settings' sake.
from ocillm.oci.reference import DEFAULT_NAMESPACE, DEFAULT_REGISTRY, DEFAULT_TAG

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_NAMESPACE",
    "DEFAULT_REGISTRY",
    "DEFAULT_TAG",
    "Settings",
    "parse_bool",
]

DEFAULT_HOST = "127.0.0.1:11434"
DEFAULT_REGISTRY_RETRIES = 5
DEFAULT_REGISTRY_BACKOFF = 0.5
_FALSE = frozenset({"0", "false", "no", "off"})


def parse_bool(value: str | None, default: bool = False) -> bool:
    """The one reading of a boolean variable: unset or blank is ``default``; ``0``, ``false``,
    ``no`` and ``off`` (any case) are false; anything else is true."""
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in _FALSE


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        from ocillm.errors import UsageError

        raise UsageError(f"{name}={raw!r}: expected an integer") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
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


def _epoch(env: Mapping[str, str]) -> int | None:
    raw = env.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        from ocillm.errors import UsageError

        raise UsageError(f"SOURCE_DATE_EPOCH={raw!r}: expected seconds since 1970") from None


def _repack(env: Mapping[str, str]) -> str:
    raw = env.get("OCILLM_LLAMA_REPACK", "").strip().lower()
    if raw in ("", "auto"):
        return "auto"
    if raw in ("off", "on"):
        return raw
    if raw in ("0", "1") or raw in _FALSE or raw in ("true", "yes"):
        return "on" if parse_bool(raw) else "off"
    from ocillm.errors import UsageError

    raise UsageError(f"OCILLM_LLAMA_REPACK={raw!r}: expected auto, on or off")


KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")


def _kv_cache_type(env: Mapping[str, str]) -> str:
    raw = env.get("OCILLM_KV_CACHE_TYPE", "").strip().lower() or "f16"
    if raw not in KV_CACHE_TYPES:
        from ocillm.errors import UsageError

        raise UsageError(f"OCILLM_KV_CACHE_TYPE={raw!r}: expected f16, q8_0 or q4_0")
    return raw


def _flash_attention(env: Mapping[str, str], kv_cache_type: str) -> str:
    raw = env.get("OCILLM_FLASH_ATTENTION", "").strip().lower()
    if raw in ("", "auto"):
        value = "auto"
    elif raw in ("on", "off"):
        value = raw
    elif raw in ("0", "1") or raw in _FALSE or raw in ("true", "yes"):
        value = "on" if parse_bool(raw) else "off"
    else:
        from ocillm.errors import UsageError

        raise UsageError(f"OCILLM_FLASH_ATTENTION={raw!r}: expected auto, on or off")
    if value == "off" and kv_cache_type != "f16":
        from ocillm.errors import UsageError

        # llama.cpp quantizes the V cache only with flash attention.
        raise UsageError(
            f"OCILLM_KV_CACHE_TYPE={kv_cache_type} needs flash attention: "
            "set OCILLM_FLASH_ATTENTION to auto or on"
        )
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
    max_request_bytes: int = 64 << 20
    """``OCILLM_MAX_REQUEST_BYTES``: a larger request body gets 413 (``0``: no limit)."""
    num_parallel: int = 1
    max_loaded_models: int = 0
    load_timeout: str = "5m"
    sched_spread: bool = False
    gpu_overhead: int = 0
    context_length: int = 0
    runner_unix_socket: bool = False
    runner_spare: bool = True
    llama_repack: str = "auto"
    """llama.cpp's extra buffer types (repacked weights): auto (off on AMX CPUs), on, off."""
    kv_cache_type: str = "f16"
    """``OCILLM_KV_CACHE_TYPE``: f16, q8_0 or q4_0 (the memory estimate follows it)."""
    flash_attention: str = "auto"
    """``OCILLM_FLASH_ATTENTION``: auto (llama.cpp decides per device), on, off."""
    insecure_registries: tuple[str, ...] = ()
    registry_retries: int = DEFAULT_REGISTRY_RETRIES
    registry_backoff: float = DEFAULT_REGISTRY_BACKOFF
    registry_username: str | None = None
    registry_password: str | None = field(default=None, repr=False)
    podman_auth_file: Path | None = None
    """podman's ``REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``."""
    docker_config: Path | None = None
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    api_key: str | None = field(default=None, repr=False)
    source_date_epoch: int | None = None
    """``SOURCE_DATE_EPOCH``: builds stamp this time; None: images carry no timestamp."""
    create_paths: tuple[Path, ...] = ()
    """``OCILLM_CREATE_PATHS``: directories ``/api/create`` may read GGUF files from (none: the
    API imports only images and uploaded blobs)."""
    registry_write: bool = False
    """``OCILLM_REGISTRY_WRITE``: the daemon's ``/v2/`` accepts pushes (off: read only)."""
    mirror_of: str | None = None
    """``OCILLM_MIRROR_OF`` / ``serve --mirror-of``: the upstream the daemon's ``/v2/`` caches."""
    registry_mirrors: str = ""
    """``OCILLM_REGISTRY_MIRRORS``: ``origin=mirror-url,...`` tried in order before the origin."""
    ollama_models: Path | None = None
    """``OLLAMA_MODELS``, else ``~/.ollama/models``: the Ollama store import/export use."""
    read_only: bool = False
    """``OCILLM_READ_ONLY`` / ``serve --read-only``: serve the store without writing there."""
    extra_models: tuple[Path, ...] = ()
    """More read-only stores served beside ``models`` (``serve --models`` given again)."""
    policy: Path | None = None
    """The trust policy file (``OCILLM_POLICY``); None: ``$OCILLM_HOME/policy.json``."""
    metrics: bool = True
    """``OCILLM_METRICS``: serve ``GET /metrics`` (Prometheus text format); off: 404."""

    @property
    def policy_file(self) -> Path:
        return self.policy or self.home / "policy.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable from ``env`` (default: this process's environment), once."""
        e = dict(os.environ if env is None else env)
        user_home = Path(e.get("HOME") or Path.home()).expanduser()
        home = Path(e.get("OCILLM_HOME") or user_home / ".ocillm").expanduser()
        models = Path(e.get("OCILLM_MODELS") or home / "models").expanduser()
        podman: Path | None = None
        if e.get("REGISTRY_AUTH_FILE"):
            podman = Path(e["REGISTRY_AUTH_FILE"])
        elif e.get("XDG_RUNTIME_DIR"):
            podman = Path(e["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
        docker_dir = Path(e.get("DOCKER_CONFIG") or user_home / ".docker").expanduser()

        def _list(name: str) -> tuple[str, ...]:
            return tuple(p.strip() for p in e.get(name, "").split(",") if p.strip())

        return cls(
            home=home,
            models=models,
            default_registry=e.get("OCILLM_DEFAULT_REGISTRY", "").strip() or DEFAULT_REGISTRY,
            debug=parse_bool(e.get("OCILLM_DEBUG")),
            host=e.get("OCILLM_HOST", "").strip() or DEFAULT_HOST,
            origins=_list("OCILLM_ORIGINS"),
            keep_alive=e.get("OCILLM_KEEP_ALIVE", "").strip() or "5m",
            max_queue=_int(e, "OCILLM_MAX_QUEUE", 512),
            max_request_bytes=_int(e, "OCILLM_MAX_REQUEST_BYTES", 64 << 20),
            num_parallel=_int(e, "OCILLM_NUM_PARALLEL", 1),
            max_loaded_models=_int(e, "OCILLM_MAX_LOADED_MODELS", 0),
            load_timeout=e.get("OCILLM_LOAD_TIMEOUT", "").strip() or "5m",
            sched_spread=parse_bool(e.get("OCILLM_SCHED_SPREAD")),
            gpu_overhead=_int(e, "OCILLM_GPU_OVERHEAD", 0),
            context_length=_int(e, "OCILLM_CONTEXT_LENGTH", 0),
            runner_unix_socket=parse_bool(e.get("OCILLM_RUNNER_UNIX_SOCKET")),
            runner_spare=parse_bool(e.get("OCILLM_RUNNER_SPARE"), default=True),
            llama_repack=_repack(e),
            kv_cache_type=_kv_cache_type(e),
            flash_attention=_flash_attention(e, _kv_cache_type(e)),
            insecure_registries=_list("OCILLM_INSECURE_REGISTRIES"),
            registry_retries=max(1, _int(e, "OCILLM_REGISTRY_RETRIES", DEFAULT_REGISTRY_RETRIES)),
            registry_backoff=_float(e, "OCILLM_REGISTRY_BACKOFF", DEFAULT_REGISTRY_BACKOFF),
            registry_username=e.get("OCILLM_REGISTRY_USERNAME") or None,
            registry_password=e.get("OCILLM_REGISTRY_PASSWORD") or None,
            podman_auth_file=podman,
            docker_config=docker_dir / "config.json",
            api_key=e.get("OCILLM_API_KEY") or None,
            source_date_epoch=_epoch(e),
            create_paths=tuple(Path(p).expanduser() for p in _list("OCILLM_CREATE_PATHS")),
            read_only=parse_bool(e.get("OCILLM_READ_ONLY")),
            policy=Path(e["OCILLM_POLICY"]).expanduser() if e.get("OCILLM_POLICY") else None,
            registry_write=parse_bool(e.get("OCILLM_REGISTRY_WRITE")),
            mirror_of=e.get("OCILLM_MIRROR_OF", "").strip() or None,
            registry_mirrors=e.get("OCILLM_REGISTRY_MIRRORS", "").strip(),
            ollama_models=Path(e.get("OLLAMA_MODELS") or user_home / ".ollama" / "models"),
            metrics=parse_bool(e.get("OCILLM_METRICS"), default=True),
        )

"""Schemathesis hooks that keep fuzzing on the tiny model and off the network and the store.

Used by ``tests/test_schemathesis.py`` and by a longer run by hand::

    FUZZ_REGISTRY=127.0.0.1:5000 SCHEMATHESIS_HOOKS=schemathesis_pin PYTHONPATH=tests \
        st run http://HOST/openapi.json ...

Every request that would load a model names ``tiny`` (so a crash would kill its runner, which
the test looks for); writes go to the throwaway name ``scratch``; ``create`` builds from ``tiny``
unless the fuzzer chose a path (refused without a filesystem look-up) or a blob. With a
registry (``FUZZ_REGISTRY`` for the CLI run), ``scratch`` lives there, so pull and push talk to
it, not to the network.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

TINY = "tiny"
SCRATCH = "scratch"
#: Paths whose requests name a model to load or read: pinned to the tiny model.
_LOADS = (
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/embeddings",
    "/api/show",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/responses",
)


def pin(path: str, body: Any, registry: str | None = None) -> Any:
    """The fuzzed ``body`` for ``path`` with its model names pinned and its generation limits
    bounded (other fields untouched)."""
    if not isinstance(body, dict):
        return body
    scratch = f"{registry}/library/{SCRATCH}" if registry else SCRATCH
    body = dict(body)
    _bound(body)
    if path in _LOADS:
        body["model"] = TINY
        body.pop("name", None)
    elif path == "/api/copy":
        body["source"], body["destination"] = TINY, scratch
    elif path in ("/api/delete", "/api/create", "/api/pull", "/api/push"):
        body["model"] = scratch
        body.pop("name", None)
    if path == "/api/create":
        chosen = body.get("from")
        # A reference that is not local would be pulled from a registry: keep it local.
        if not (isinstance(chosen, str) and chosen.startswith(("/", ".", "~", "sha256"))):
            body["from"] = TINY
    return body


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    operation = context.operation
    registry = os.environ.get("FUZZ_REGISTRY") or None
    return pin(operation.path, body, registry) if operation is not None else body


#: The most tokens a fuzzed request may ask for. The tiny model's weights are random, so it rarely
#: stops by itself; a limit of millions would generate (shifting the context, as Ollama does)
#: past the client's timeout, which tests patience, not the server.
MAX_GENERATED = 64


def _too_many(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > MAX_GENERATED


def _bound(body: dict[str, Any]) -> None:
    """Cap ``body``'s generation limits (a copy: its ``options`` are replaced, not changed)."""
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        if _too_many(body.get(key)):
            body[key] = MAX_GENERATED
    options = body.get("options")
    if isinstance(options, dict) and _too_many(options.get("num_predict")):
        body["options"] = {**options, "num_predict": MAX_GENERATED}

"""Schemathesis over the served OpenAPI document: no request may get a 5xx or kill a runner.

Bounded for CI (a few examples per operation, a few hundred in all, the tiny model); a longer
run by hand is in ``tests/schemathesis_pin.py``'s docstring. Calls that load a model name
``tiny`` (``schemathesis_pin``), so a request that crashed a runner would show in the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis_pin import TINY, pin
from server_fixtures import ServerProcess, build_model

EXAMPLES = 25  # per operation, 24 operations (those without inputs run once): ~450 requests


@pytest.fixture
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path, registry: Any
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-fuzz")
    build_model(home / "models", tiny_gguf, TINY, "PARAMETER num_predict 4\n")
    env = {
        "OCILLM_RUNNER_SPARE": "0",
        "OCILLM_REGISTRY_RETRIES": "1",
    }
    proc = ServerProcess(home, env).start()
    proc.registry = registry.host  # type: ignore[attr-defined]  # where pull/push go
    yield proc
    log = proc.log()
    assert proc.stop() == 0, log[-3000:]
    assert "crashed" not in log, log[-5000:]


def _describe(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)  # an exception group (Python 3.11+ or backport)
    if inner:
        return "\n".join([str(exc), *(_describe(e) for e in inner)])
    return str(exc)


def test_no_request_is_a_server_error_nor_kills_a_runner(server: ServerProcess) -> None:
    api = schemathesis.openapi.from_url(server.url + "/openapi.json")
    # Each operation's own Hypothesis run (schemathesis's pytest plugin does not load on this
    # pytest); every failing operation is reported, not only the first.
    failures = []
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # the failing request is enough: no shrink
        )
        def fuzz(case: Any) -> None:
            # pull/push name the local registry: no network
            case.body = pin(case.operation.path, case.body, server.registry)  # type: ignore[attr-defined]
            case.call_and_validate(base_url=server.url, checks=[not_a_server_error], timeout=60)

        try:
            fuzz()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # failed checks (a group), each with its request
            failures.append(f"{operation.label}: {_describe(exc)}")
    assert not failures, "\n\n".join(failures)
    # The tiny model still answers, and no runner crashed on the way (one log line per crash).
    r = httpx.post(
        server.url + "/api/generate",
        json={"model": TINY, "prompt": "still there?", "stream": False},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["done"] is True
    assert "crashed" not in server.log()

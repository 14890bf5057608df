"""``think`` levels reach the prompt templates: Go templates see ``.Think``, ``.ThinkLevel`` and
``.IsThinkSet`` as Ollama sets them; GGUF Jinja chat templates see ``think``,
``enable_thinking`` and ``reasoning_effort``. Each template prints what it got, read back through
``_debug_render_only`` on ``/api/generate`` and ``/api/chat``; a level Ollama does not know is a
400 on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tiny_gguf as tiny_gguf_mod
from fastapi.testclient import TestClient
from server_fixtures import build_model

from ocillm.config import Settings
from ocillm.gpu import FakeDiscovery
from ocillm.scheduler import StubRunnerFactory
from ocillm.server.app import create_app

HEADERS = {"Host": "localhost"}

# Thinking tags around .Thinking inside range .Messages: the thinking capability (Ollama's rule).
GO_TEMPLATE = (
    "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
    "{{ .Content }}{{ end }}"
    "[think={{ .Think }} level={{ .ThinkLevel }} set={{ .IsThinkSet }}]"
)
# Writes <think> and </think>: a Jinja template that thinks.
JINJA_TEMPLATE = (
    "{% for m in messages %}{{ m['content'] }}{% endfor %}<think></think>"
    "[think={{ think if think is defined else 'unset' }}"
    " enable={{ enable_thinking if enable_thinking is defined else 'unset' }}"
    " effort={{ reasoning_effort if reasoning_effort is defined else 'unset' }}]"
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("think-levels")
    jinja = tiny_gguf_mod.write_tiny_gguf(
        home / "jinja.gguf", chat_template=JINJA_TEMPLATE, name="tiny-jinja-think"
    )
    build_model(home / "models", tiny_gguf, "go-think", f'TEMPLATE """{GO_TEMPLATE}"""\n')
    build_model(home / "models", jinja, "jinja-think")
    build_model(home / "models", tiny_gguf, "plain", 'TEMPLATE """{{ .Prompt }}"""\n')
    settings = Settings.from_env({"OCILLM_HOME": str(home), "OCILLM_MODELS": str(home / "models")})
    app = create_app(settings, discovery=FakeDiscovery([]), factory=StubRunnerFactory())
    with TestClient(app, headers=HEADERS) as c:
        yield c


def request(route: str, model: str, **extra: Any) -> dict[str, Any]:
    """A one-turn generate or chat body for ``model``."""
    body: dict[str, Any] = {"model": model, "stream": False, **extra}
    if route == "/api/generate":
        body["prompt"] = "q"
    else:
        body["messages"] = [{"role": "user", "content": "q"}]
    return body


def rendered(client: TestClient, route: str, model: str, **extra: Any) -> str:
    resp = client.post(route, json=request(route, model, _debug_render_only=True, **extra))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["_debug_info"]["rendered_template"])


ROUTES = ["/api/generate", "/api/chat"]
UNSET: dict[str, Any] = {}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("think", "printed"),
    [
        ({"think": "low"}, "[think=true level=low set=true]"),
        ({"think": "medium"}, "[think=true level=medium set=true]"),
        ({"think": "high"}, "[think=true level=high set=true]"),
        ({"think": True}, "[think=true level=medium set=true]"),
        ({"think": False}, "[think=false level= set=true]"),
        # A thinking model thinks unless told not to (Ollama's default).
        (UNSET, "[think=true level=medium set=true]"),
    ],
)
def test_go_templates_see_think_and_its_level(
    client: TestClient, route: str, think: dict[str, Any], printed: str
) -> None:
    assert rendered(client, route, "go-think", **think).endswith(printed)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("think", "printed"),
    [
        ({"think": "low"}, "[think=low enable=True effort=low]"),
        ({"think": "medium"}, "[think=medium enable=True effort=medium]"),
        ({"think": "high"}, "[think=high enable=True effort=high]"),
        ({"think": "max"}, "[think=max enable=True effort=high]"),
        ({"think": True}, "[think=True enable=True effort=medium]"),
        ({"think": False}, "[think=False enable=False effort=unset]"),
        (UNSET, "[think=True enable=True effort=medium]"),
    ],
)
def test_jinja_templates_see_enable_thinking_and_reasoning_effort(
    client: TestClient, route: str, think: dict[str, Any], printed: str
) -> None:
    assert rendered(client, route, "jinja-think", **think).endswith(printed)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("model", ["go-think", "jinja-think"])
@pytest.mark.parametrize("level", ["extreme", "LOW", 3, ""])
def test_an_unknown_level_is_a_400(client: TestClient, route: str, model: str, level: Any) -> None:
    resp = client.post(route, json=request(route, model, think=level))
    assert resp.status_code == 400
    assert resp.json() == {"error": f"invalid think value: {level!r}"}


@pytest.mark.parametrize("route", ROUTES)
def test_a_level_on_a_model_that_cannot_think_is_a_400(client: TestClient, route: str) -> None:
    resp = client.post(route, json=request(route, "plain", think="high"))
    assert (resp.status_code, resp.json()) == (400, {"error": '"plain" does not support thinking'})

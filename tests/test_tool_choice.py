"""A required tool call on a template whose calls start with a tag (``<tool_call>``, qwen's
convention): the grammar writes the tag, then one call, and the server finds it; on chat
completions, where ``tool_choice`` is honoured too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from server_fixtures import ServerProcess, build_model
from test_openai_api import TIME, WEATHER

from ocillm.server.models import TemplateChoice
from ocillm.server.toolchoice import forced_call_grammar

QWEN_STYLE = (
    "{{ if .Tools }}<tools>{{ range .Tools }}{{ .Function.Name }};{{ end }}</tools>{{ end }}"
    "{{ range .Messages }}<{{ .Role }}>{{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>"
    '{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}</tool_call>'
    "{{ end }}{{ else }}{{ .Content }}{{ end }}{{ end }}<assistant>"
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[openai.OpenAI]:
    home = tmp_path_factory.mktemp("serve-toolchoice")
    build_model(home / "models", tiny_gguf, "tiny-qwen", f'TEMPLATE """{QWEN_STYLE}"""\n')
    proc = ServerProcess(home).start()
    yield openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0)
    assert proc.stop() == 0, proc.log()[-3000:]


def test_the_grammar_starts_with_the_templates_tag() -> None:
    grammar = forced_call_grammar(TemplateChoice("go", QWEN_STYLE), [WEATHER], ["get_weather"])
    assert grammar.startswith('root ::= "<tool_call>" [ \\t\\n]* forced-call\n')
    assert "forced-call ::= " in grammar


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_required_call_is_made_and_found(client: openai.OpenAI, seed: int) -> None:
    out = client.chat.completions.create(
        model="tiny-qwen",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=200,
        seed=seed,
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == ""
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] in ("Paris", "Tokyo")


def test_none_hides_the_tools_and_a_stranger_is_refused(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="tiny-qwen",
        messages=[{"role": "user", "content": "hi"}],
        tools=[WEATHER],
        tool_choice="none",
        max_tokens=1,
    )
    plain = client.chat.completions.create(
        model="tiny-qwen", messages=[{"role": "user", "content": "hi"}], max_tokens=1
    )
    assert out.usage is not None and plain.usage is not None
    assert out.usage.prompt_tokens == plain.usage.prompt_tokens  # no <tools> rendered
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="tiny-qwen",
            messages=[{"role": "user", "content": "hi"}],
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert err.value.body["message"] == "tool_choice names the tool 'nope', which is not in tools"

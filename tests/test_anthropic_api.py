"""Anthropic's Messages API on a live ``ocillm serve``, through the official ``anthropic`` client
and raw HTTP: messages streamed and not, the exact event sequence, stop sequences, thinking,
a tool round trip, count_tokens, and every error in Anthropic's shape.

Tool calls on a random-weight model: ``tool_choice`` ``tool``/``any`` samples the model under a
grammar of the template's call convention, so it writes a call the server must find and deliver
as a ``tool_use`` block.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from server_fixtures import ServerProcess, build_model
from test_openai_api import TOOLS_TEMPLATE
from test_server_api import THINK_MODELFILE

from ocillm.server.apis.anthropic import protocol as wire

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Tokyo"]}},
        "required": ["city"],
    },
}
USER = [{"role": "user", "content": "hello"}]
#: Sampling fields Anthropic's API takes and its newest SDK no longer names.
GREEDY = {"temperature": 0, "top_k": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-anthropic")
    models = home / "models"
    build_model(models, tiny_gguf, "tiny")
    build_model(models, tiny_gguf, "tiny-tools", f'TEMPLATE """{TOOLS_TEMPLATE}"""\n')
    build_model(models, tiny_gguf, "tiny-think", THINK_MODELFILE)
    proc = ServerProcess(home).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="ignored", max_retries=0)


def post(server: ServerProcess, path: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(server.url + path, content=json.dumps(body), timeout=60, **kw)


def sse(resp: httpx.Response) -> list[tuple[str, Any]]:
    """(event, data) pairs of an SSE body, checking that each names its data's type."""
    assert resp.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in resp.text.split("\n\n"):
        if not block:
            continue
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data[len("data: ") :])
        assert payload["type"] == event[len("event: ") :]
        out.append((payload["type"], payload))
    return out


def test_a_message_has_anthropics_shape(client: anthropic.Anthropic, server: ServerProcess) -> None:
    out = client.messages.create(
        model="tiny", max_tokens=5, messages=USER, metadata={"user_id": "u"}
    )
    assert out.id.startswith("msg_") and out.type == "message" and out.role == "assistant"
    assert out.model == "tiny" and out.stop_reason == "max_tokens" and out.stop_sequence is None
    assert [b.type for b in out.content] == ["text"]
    assert out.usage.output_tokens == 5 and out.usage.input_tokens > 0
    raw = post(server, "/v1/messages", {"model": "tiny", "max_tokens": 3, "messages": USER})
    wire.AnthropicMessage.model_validate(raw.json())


def test_the_stream_is_anthropics_event_sequence(server: ServerProcess) -> None:
    body = {"model": "tiny", "max_tokens": 6, "messages": USER, "stream": True}
    body["temperature"] = 0
    events = sse(post(server, "/v1/messages", body))
    kinds = [kind for kind, _ in events]
    assert kinds[:4] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    assert kinds[-4:] == [
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert set(kinds[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert events[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    deltas = [e["delta"] for kind, e in events if kind == "content_block_delta"]
    assert all(d["type"] == "text_delta" for d in deltas)
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == 6
    whole = post(server, "/v1/messages", {**body, "stream": False}).json()
    assert "".join(d["text"] for d in deltas) == whole["content"][0]["text"]


def test_the_sdk_accumulates_the_stream(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="tiny", max_tokens=4, messages=USER) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 4


def test_a_stop_sequence_is_named(client: anthropic.Anthropic) -> None:
    def ask(**kw: Any) -> Any:
        return client.messages.create(
            model="tiny", max_tokens=12, messages=USER, extra_body=GREEDY, **kw
        )

    text = ask().content[0].text
    assert len(text) > 4
    stop = text[2:4]
    cut = ask(stop_sequences=["never-written", stop])
    assert (cut.stop_reason, cut.stop_sequence) == ("stop_sequence", stop)
    assert cut.content[0].text == text[: text.index(stop)] if text.index(stop) else not cut.content
    streamed = client.messages.create(
        model="tiny",
        max_tokens=12,
        messages=USER,
        extra_body=GREEDY,
        stream=True,
        stop_sequences=[stop],
    )
    delta = next(e for e in streamed if e.type == "message_delta")
    assert (delta.delta.stop_reason, delta.delta.stop_sequence) == ("stop_sequence", stop)


def test_system_blocks_and_count_tokens_match_the_prompt(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "one"}]}]
    counted = client.messages.count_tokens(model="tiny", system=system, messages=messages)
    out = client.messages.create(model="tiny", max_tokens=1, system=system, messages=messages)
    assert counted.input_tokens == out.usage.input_tokens > 0
    plain = client.messages.count_tokens(model="tiny", messages=messages)
    assert plain.input_tokens < counted.input_tokens


def test_thinking_blocks(client: anthropic.Anthropic) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    # Greedy: sampled, the random model can end or emit only blanks at once.
    out = client.messages.create(
        model="tiny-think", max_tokens=2048, messages=USER, thinking=thinking, extra_body=GREEDY
    )
    assert out.content[0].type == "thinking" and out.content[0].thinking
    with client.messages.stream(
        model="tiny-think", max_tokens=2048, messages=USER, thinking=thinking, extra_body=GREEDY
    ) as s:
        events = list(s)
        final = s.get_final_message()
    assert any(e.type == "content_block_delta" and e.delta.type == "thinking_delta" for e in events)
    assert final.content[0].type == "thinking" and final.content[0].thinking
    off = client.messages.create(model="tiny-think", max_tokens=8, messages=USER)
    assert [b.type for b in off.content] == ["text"]  # unset: no thinking, as Claude
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model="tiny", max_tokens=2048, messages=USER, thinking=thinking)
    assert err.value.body["error"]["message"] == '"tiny" does not support thinking'


def test_a_tool_round_trip(client: anthropic.Anthropic, server: ServerProcess) -> None:
    ask: Any = [{"role": "user", "content": "weather in Paris?"}]
    out = client.messages.create(
        model="tiny-tools",
        max_tokens=200,
        messages=ask,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert out.stop_reason == "tool_use"
    (use,) = [b for b in out.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input["city"] in ("Paris", "Tokyo")
    history: Any = [
        *ask,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in out.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
        },
    ]
    counted = client.messages.count_tokens(model="tiny-tools", messages=history, tools=[WEATHER])
    again = client.messages.create(
        model="tiny-tools", max_tokens=1, messages=history, tools=[WEATHER]
    )
    assert again.usage.input_tokens == counted.input_tokens
    rendered = (
        "<tools>get_weather;</tools><user>weather in Paris?<assistant>"
        f'{{"name": "get_weather", "parameters": {json.dumps(use.input, separators=(",", ":"))}}}'
        "<tool>sunny(get_weather)<assistant>"
    )
    debug = post(
        server,
        "/api/chat",
        {
            "model": "tiny-tools",
            "stream": False,
            "_debug_render_only": True,
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]},
                }
            ],
            "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "get_weather", "arguments": use.input}}],
                },
                {"role": "tool", "tool_name": "get_weather", "content": "sunny"},
            ],
        },
    ).json()
    assert debug["_debug_info"]["rendered_template"] == rendered


def test_a_streamed_tool_call_is_an_input_json_delta(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="tiny-tools",
        max_tokens=200,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        tool_choice={"type": "any"},
    ) as s:
        events = list(s)
        final = s.get_final_message()
    json_deltas = [
        e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(json_deltas) == 1
    (use,) = final.content
    assert use.type == "tool_use" and json.loads(json_deltas[0].delta.partial_json) == use.input
    assert final.stop_reason == "tool_use"


def test_errors_come_in_anthropics_shape(
    client: anthropic.Anthropic, server: ServerProcess
) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="nope", max_tokens=5, messages=USER)
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model 'nope' not found"},
    }
    cases = [
        ({"model": "tiny", "messages": USER}, "max_tokens: Field required"),
        (
            {"model": "tiny", "max_tokens": 5, "messages": USER, "top_q": 1},
            "top_q: Extra inputs are not permitted",
        ),
        (
            {
                "model": "tiny",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "url", "url": "https://example.org/a.png"},
                            }
                        ],
                    }
                ],
            },
            "image source type 'url' is not supported: send the image as a base64 source",
        ),
        (
            {
                "model": "tiny",
                "max_tokens": 5,
                "messages": USER,
                "tools": [WEATHER],
                "tool_choice": {"type": "tool", "name": "other"},
            },
            "tool_choice names the tool 'other', which is not in tools",
        ),
    ]
    for body, message in cases:
        r = post(server, "/v1/messages", body)
        assert r.status_code == 400, body
        assert r.json() == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": message},
        }
        wire.ErrorResponse.model_validate(r.json())
    r = httpx.post(server.url + "/v1/messages", content=b"{bad", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("invalid JSON")
    with pytest.raises(anthropic.BadRequestError) as tools:
        client.messages.create(model="tiny", max_tokens=5, messages=USER, tools=[WEATHER])  # type: ignore[list-item]
    assert tools.value.body["error"]["message"].endswith("does not support tools")
    r = post(
        server, "/v1/messages", {"model": "nope", "max_tokens": 5, "messages": USER, "stream": True}
    )
    assert r.status_code == 404 and r.json()["type"] == "error"  # before the stream starts


def test_x_api_key_is_the_key(tmp_path: Path, tiny_gguf: Path) -> None:
    build_model(tmp_path / "models", tiny_gguf, "tiny")
    locked = ServerProcess(tmp_path, {"OCILLM_API_KEY": "s3cret"}).start()
    try:
        wrong = anthropic.Anthropic(base_url=locked.url, api_key="nope", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as err:
            wrong.messages.create(model="tiny", max_tokens=2, messages=USER)
        assert err.value.body == {
            "type": "error",
            "error": {"type": "authentication_error", "message": "unauthorized"},
        }
        right = anthropic.Anthropic(base_url=locked.url, api_key="s3cret", max_retries=0)
        assert right.messages.create(model="tiny", max_tokens=2, messages=USER).usage.output_tokens
        bearer = anthropic.Anthropic(base_url=locked.url, auth_token="s3cret", max_retries=0)
        assert bearer.messages.count_tokens(model="tiny", messages=USER).input_tokens > 0
        r = httpx.get(locked.url + "/api/tags", headers={"x-api-key": "s3cret"})
        assert r.status_code == 200
    finally:
        assert locked.stop() == 0

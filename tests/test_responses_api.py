"""OpenAI's Responses API on a live ``ocillm serve``, through the official ``openai`` client's
``client.responses`` and raw HTTP: a response streamed and not (the event sequence and its
numbering), a function call round trip, json_schema output, reasoning, stored responses and
``previous_response_id``, and errors in OpenAI's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from server_fixtures import ServerProcess, build_model
from test_openai_api import PERSON_SCHEMA, PLAIN_TEMPLATE, TOOLS_TEMPLATE, count_tokens
from test_server_api import THINK_MODELFILE

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Tokyo"]}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-responses")
    models = home / "models"
    build_model(models, tiny_gguf, "tiny")
    build_model(models, tiny_gguf, "tiny-plain", f'TEMPLATE """{PLAIN_TEMPLATE}"""\n')
    build_model(models, tiny_gguf, "tiny-tools", f'TEMPLATE """{TOOLS_TEMPLATE}"""\n')
    build_model(models, tiny_gguf, "tiny-think", THINK_MODELFILE)
    proc = ServerProcess(home).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="ignored", max_retries=0)


@pytest.fixture(scope="module")
def vocab(tiny_gguf: Path) -> Any:
    from ocillm.runner.llama_loader import open_llama

    return open_llama(tiny_gguf, vocab_only=True, verbose=False)


def post(server: ServerProcess, body: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", content=json.dumps(body), timeout=60)


def test_a_response_has_openais_shape(client: openai.OpenAI) -> None:
    # Greedy: a sampled answer can end (EOS) before 5 tokens on the random model.
    out = client.responses.create(model="tiny", input="hello", max_output_tokens=5, temperature=0)
    assert out.id.startswith("resp_") and out.object == "response" and out.model == "tiny"
    assert out.status == "incomplete" and out.incomplete_details is not None
    assert out.incomplete_details.reason == "max_output_tokens"
    (item,) = out.output
    assert item.type == "message" and item.role == "assistant" and out.output_text
    assert out.usage is not None and out.usage.output_tokens == 5
    assert out.usage.total_tokens == out.usage.input_tokens + 5


def test_instructions_and_input_items_render_as_a_chat(client: openai.OpenAI, vocab: Any) -> None:
    out = client.responses.create(
        model="tiny-plain",
        instructions="sys",
        input=[
            {"role": "developer", "content": "dev"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
        ],
        max_output_tokens=1,
    )
    assert out.usage is not None
    rendered = "<system>sys\n\ndev<user>q<assistant>"  # consecutive messages: collated
    assert out.usage.input_tokens == count_tokens(vocab, rendered)


def test_the_stream_is_the_responses_event_sequence(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(model="tiny", input="hello", max_output_tokens=4, stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-5:] == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text and events[-1].response.output_text == text
    assert events[-1].response.usage is not None
    assert events[-1].response.usage.output_tokens == 4


def test_json_schema_output(client: openai.OpenAI) -> None:
    out = client.responses.create(
        model="tiny",
        input="a person",
        max_output_tokens=300,
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON_SCHEMA}},
    )
    assert out.status == "completed"
    jsonschema.validate(json.loads(out.output_text), PERSON_SCHEMA)


def test_a_function_call_round_trip(client: openai.OpenAI, vocab: Any) -> None:
    out = client.responses.create(
        model="tiny-tools",
        input="weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
        max_output_tokens=200,
    )
    (call,) = [item for item in out.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    args = json.loads(call.arguments)
    assert args["city"] in ("Paris", "Tokyo")
    follow = client.responses.create(
        model="tiny-tools",
        input=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": "get_weather",
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
        max_output_tokens=1,
    )
    rendered = (
        "<tools>get_weather;</tools><user>weather in Paris?"
        f'<assistant>{{"name": "get_weather", "parameters": {json.dumps(args, separators=(",", ":"))}}}'
        "<tool>sunny(get_weather)<assistant>"
    )
    assert follow.usage is not None
    assert follow.usage.input_tokens == count_tokens(vocab, rendered)
    chained = client.responses.create(
        model="tiny-tools",
        previous_response_id=out.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],  # type: ignore[list-item]
        max_output_tokens=1,
    )
    assert chained.usage is not None and chained.usage.input_tokens == follow.usage.input_tokens


def test_a_streamed_function_call(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="tiny-tools",
            input="weather?",
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "function", "name": "get_weather"},
            max_output_tokens=200,
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    delta, done, item = events[3], events[4], events[5]
    assert delta.delta == done.arguments == item.item.arguments
    assert events[-1].response.output[0].type == "function_call"


def test_reasoning_where_the_template_thinks(client: openai.OpenAI) -> None:
    out = client.responses.create(
        model="tiny-think",
        input="q",
        max_output_tokens=8,
        reasoning={"effort": "high"},
        temperature=0,  # sampled, the random model can end or emit only blanks at once
    )
    assert out.output[0].type == "reasoning" and out.output[0].content
    events = list(
        client.responses.create(
            model="tiny-think",
            input="q",
            max_output_tokens=8,
            reasoning={"effort": "low"},
            temperature=0,
            stream=True,
        )
    )
    assert any(e.type == "response.reasoning_text.delta" for e in events)
    off = client.responses.create(
        model="tiny-think", input="q", max_output_tokens=4, reasoning={"effort": "none"}
    )
    assert [i.type for i in off.output] == ["message"]


def test_stored_responses(client: openai.OpenAI, server: ServerProcess, vocab: Any) -> None:
    first = client.responses.create(model="tiny-plain", input="one", max_output_tokens=3)
    assert client.responses.retrieve(first.id).output_text == first.output_text
    second = client.responses.create(
        model="tiny-plain", input="two", previous_response_id=first.id, max_output_tokens=1
    )
    rendered = f"<user>one<assistant>{first.output_text}<user>two<assistant>"
    assert second.usage is not None
    assert second.usage.input_tokens == count_tokens(vocab, rendered)
    unstored = client.responses.create(model="tiny", input="x", max_output_tokens=1, store=False)
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve(unstored.id)
    assert err.value.body["message"] == f"Response with id '{unstored.id}' not found."
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="tiny", input="x", previous_response_id=first.id)


def test_errors_come_in_openais_shape(client: openai.OpenAI, server: ServerProcess) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="nope", input="x")
    assert missing.value.body == {
        "message": "model 'nope' not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }
    cases = [
        ({"model": "tiny", "input": "x", "seed": 1}, "seed: Extra inputs are not permitted"),
        ({"model": "tiny", "input": "x", "background": True}, "background: Input should be False"),
        (
            {"model": "tiny", "input": [{"type": "web_search_call"}]},
            "input.0.type: unsupported input item type 'web_search_call'",
        ),
        (
            {"model": "tiny", "input": "x", "include": ["message.output_text.logprobs"]},
            "include.0: Input should be 'reasoning.encrypted_content'",
        ),
    ]
    for body, message in cases:
        r = post(server, body)
        assert r.status_code == 400, body
        assert r.json()["error"]["message"] == message
        assert r.json()["error"]["type"] == "invalid_request_error"
    r = post(server, {"model": "nope", "input": "x", "stream": True})
    assert r.status_code == 404  # before the stream starts

"""Log probabilities through a live ``ocillm serve`` on the tiny model, in each API's shape: Ollama's
``logprobs``/``top_logprobs`` on /api/generate and /api/chat (streamed and not, through the
official ``ollama`` client), OpenAI's on /v1/chat/completions and /v1/completions (through the
official ``openai`` client). The entries must spell the answer and agree across the APIs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from server_fixtures import ServerProcess, build_model

from ocillm.runner.batch.text import Utf8Stream

GREEDY = {"temperature": 0, "seed": 1, "num_predict": 8}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-logprobs")
    build_model(home / "models", tiny_gguf, "tiny")
    proc = ServerProcess(home).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def _check_entries(entries: list[dict[str, Any]], top: int) -> None:
    assert len(entries) == 8
    for e in entries:
        assert e["logprob"] <= 0
        alts = e.get("top_logprobs") or []
        assert len(alts) == top
        if top:  # greedy: the chosen token is the likeliest, the list sorted
            assert math.isclose(alts[0]["logprob"], e["logprob"], abs_tol=1e-6)
            assert [a["logprob"] for a in alts] == sorted(
                (a["logprob"] for a in alts), reverse=True
            )


def test_the_entries_bytes_spell_the_answer(server: ServerProcess) -> None:
    body = {"model": "tiny", "prompt": "hello", "options": GREEDY, "stream": False}
    out = httpx.post(f"{server.url}/api/generate", json={**body, "logprobs": True}).json()
    assert "logprobs" in out, out
    entries = out["logprobs"]
    _check_entries(entries, 0)
    spelled = Utf8Stream()
    text = "".join(spelled.feed(bytes(e["bytes"])) for e in entries) + spelled.flush()
    assert text == out["response"]


def test_ollama_generate_logprobs_streamed_and_not(server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)
    whole = client.generate(
        "tiny", "hello", options=GREEDY, logprobs=True, top_logprobs=3, stream=False
    )
    entries = [e.model_dump() for e in whole.logprobs or []]
    _check_entries(entries, 3)
    streamed = list(
        client.generate("tiny", "hello", options=GREEDY, logprobs=True, top_logprobs=3, stream=True)
    )
    again = [e.model_dump() for c in streamed for e in (c.logprobs or [])]
    assert [e["token"] for e in again] == [e["token"] for e in entries]
    assert "".join(c.response for c in streamed) == whole.response


def test_ollama_chat_logprobs_and_none_unless_asked(server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)
    msgs = [{"role": "user", "content": "hi"}]
    asked = client.chat("tiny", msgs, options=GREEDY, logprobs=True, stream=False)
    entries = [e.model_dump() for e in asked.logprobs or []]
    _check_entries(entries, 0)
    plain = httpx.post(
        f"{server.url}/api/chat",
        json={"model": "tiny", "messages": msgs, "options": GREEDY, "stream": False},
    ).json()
    assert "logprobs" not in plain
    assert plain["message"]["content"] == asked.message.content


def test_an_out_of_range_top_logprobs_is_a_400(server: ServerProcess) -> None:
    r = httpx.post(
        f"{server.url}/api/generate",
        json={"model": "tiny", "prompt": "x", "logprobs": True, "top_logprobs": 21},
    )
    assert r.status_code == 400


def test_openai_chat_logprobs_match_ollama(server: ServerProcess) -> None:
    oai = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    msgs = [{"role": "user", "content": "hi"}]
    out = oai.chat.completions.create(
        model="tiny",
        messages=msgs,  # type: ignore[arg-type]
        temperature=0,
        seed=1,
        max_tokens=8,
        logprobs=True,
        top_logprobs=2,
    )
    choice = out.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    content = [e.model_dump() for e in choice.logprobs.content]
    _check_entries(content, 2)
    native = ollama.Client(host=server.url).chat(
        "tiny", msgs, options=GREEDY, logprobs=True, top_logprobs=2, stream=False
    )
    assert [e["token"] for e in content] == [e.token for e in native.logprobs or []]
    stream = oai.chat.completions.create(
        model="tiny",
        messages=msgs,  # type: ignore[arg-type]
        temperature=0,
        seed=1,
        max_tokens=8,
        logprobs=True,
        stream=True,
    )
    streamed = [
        e.token
        for chunk in stream
        for c in chunk.choices
        if c.logprobs and c.logprobs.content
        for e in c.logprobs.content
    ]
    assert streamed == [e["token"] for e in content]
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(
            model="tiny",
            messages=msgs,  # type: ignore[arg-type]
            top_logprobs=2,
        )


def test_openai_completions_logprobs_in_the_legacy_shape(server: ServerProcess) -> None:
    oai = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    out = oai.completions.create(
        model="tiny", prompt="hello", temperature=0, seed=1, max_tokens=8, logprobs=2
    )
    lp = out.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 8
    assert all(len(alts) <= 2 for alts in lp.top_logprobs)
    assert lp.text_offset is not None and lp.text_offset[0] == 0
    assert lp.text_offset == sorted(lp.text_offset)

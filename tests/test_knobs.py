"""Every documented knob does what it says: settings, options and request fields that were
accepted and then ignored, each seen where it must arrive.

* On the scheduler (stub runners, fake GPUs): ``OCILLM_GPU_OVERHEAD`` and ``OCILLM_SCHED_SPREAD``
  change placement, ``main_gpu`` reaches the runner's command line, ``OCILLM_DEBUG`` starts
  runners verbose.
* Through the daemon (in-process app, real runner processes on the tiny model, each runner
  watched at the seam): ``truncate`` on generate and chat, GGUF Jinja templates truncated and
  given ``think``, ``_debug_render_only`` without a load, ``template`` on ``/api/show``,
  OpenAI's ``n``, llama.cpp's log in the serve log.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from scheduler_support import LLAMA_SHAPE, run
from server_fixtures import build_model

from ocillm.config import Settings
from ocillm.gpu import FakeDiscovery, fake_gpu
from ocillm.runner.__main__ import _parser as runner_arguments
from ocillm.runner.base import Runner
from ocillm.runner.protocol import (
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from ocillm.runner.spec import RunnerSpec
from ocillm.scheduler import (
    LoadOptions,
    LoadRequest,
    ProcessRunnerFactory,
    RunnerFactory,
    Scheduler,
    StubRunnerFactory,
)
from ocillm.server.app import create_app
from ocillm.server.options import Options

GiB = 1 << 30
HEADERS = {"Host": "localhost"}


def settings(**env: str) -> Settings:
    return Settings.from_env({"OCILLM_HOME": "/nonexistent", **env})


def load(name: str = "m", **options: Any) -> LoadRequest:
    return LoadRequest(
        model_path=Path(f"/models/{name}.gguf"),
        name=name,
        shape=LLAMA_SHAPE,
        options=LoadOptions(num_ctx=2048, **options),
    )


async def start_one(s: Scheduler, request: LoadRequest) -> None:
    async with s.acquire(request.display_name, request) as runner:
        await runner.complete(CompletionRequest(prompt="hi"))


# --- the scheduler ------------------------------------------------------------------------------


def test_gpu_overhead_keeps_memory_free_and_so_moves_layers_off_the_gpu() -> None:
    """A 3 GiB GPU holds the ~1.8 GiB model whole; keeping 2 GiB of it free does not."""

    def layers(env: dict[str, str]) -> int:
        async def main() -> int:
            factory = StubRunnerFactory()
            discovery = FakeDiscovery([fake_gpu(0, 3 * GiB)])
            s = Scheduler.from_settings(settings(**env), discovery, factory)
            await start_one(s, load())
            await s.shutdown()
            return factory.started[0].spec.n_gpu_layers

        return run(main())

    assert layers({}) == LLAMA_SHAPE.block_count + 1
    partial = layers({"OCILLM_GPU_OVERHEAD": str(2 * GiB)})
    assert 0 < partial < LLAMA_SHAPE.block_count + 1


def test_sched_spread_from_the_settings_uses_every_gpu() -> None:
    async def main(env: dict[str, str]) -> tuple[int, ...]:
        factory = StubRunnerFactory()
        discovery = FakeDiscovery([fake_gpu(0, 8 * GiB), fake_gpu(1, 8 * GiB)])
        s = Scheduler.from_settings(settings(**env), discovery, factory)
        await start_one(s, load())
        await s.shutdown()
        return factory.started[0].spec.gpu_indices

    assert len(run(main({}))) == 1
    assert sorted(run(main({"OCILLM_SCHED_SPREAD": "1"}))) == [0, 1]


def test_main_gpu_reaches_the_runner_command_line() -> None:
    """``main_gpu`` names a GPU by its ordinal; the runner, which sees only its GPUs, gets that
    GPU's position among them. A different ``main_gpu`` is a reload, as in Ollama."""

    async def main() -> list[RunnerSpec]:
        factory = StubRunnerFactory()
        discovery = FakeDiscovery([fake_gpu(0, 4 * GiB), fake_gpu(1, 8 * GiB)])
        s = Scheduler.from_settings(settings(OCILLM_SCHED_SPREAD="1"), discovery, factory)
        await start_one(s, load(main_gpu=0))
        await start_one(s, load(main_gpu=1))
        await s.shutdown()
        return [r.spec for r in factory.started]

    first, second = run(main())
    assert first.gpu_indices == second.gpu_indices == (1, 0)  # most free memory first
    for spec, ordinal in ((first, 0), (second, 1)):
        args = runner_arguments().parse_args([*spec.argv()[3:], "--port", "0"])
        assert spec.gpu_indices[args.main_gpu] == ordinal
    # The API option is what sets it.
    opts = Options.resolve({"main_gpu": 1}, None, num_ctx=2048)
    assert opts.load().main_gpu == 1


def test_debug_starts_runners_verbose() -> None:
    async def main(env: dict[str, str]) -> RunnerSpec:
        factory = StubRunnerFactory()
        s = Scheduler.from_settings(settings(**env), FakeDiscovery([]), factory)
        await start_one(s, load())
        await s.shutdown()
        return factory.started[0].spec

    assert not run(main({})).verbose
    spec = run(main({"OCILLM_DEBUG": "1"}))
    assert spec.verbose and "--verbose" in spec.argv()


# --- through the daemon --------------------------------------------------------------------------


class Recorded(Runner):
    """A real runner whose completion requests are recorded on their way to it."""

    def __init__(self, runner: Runner, seen: list[CompletionRequest]) -> None:
        self.runner = runner
        self.seen = seen

    @property
    def pid(self) -> int | None:
        return self.runner.pid

    def is_alive(self) -> bool:
        return self.runner.is_alive()

    async def health(self) -> bool:
        return await self.runner.health()

    async def stop(self) -> None:
        await self.runner.stop()

    def completion(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        self.seen.append(request)
        return self.runner.completion(request)

    async def tokenize(
        self, content: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        return await self.runner.tokenize(
            content, add_special=add_special, parse_special=parse_special
        )

    async def detokenize(self, tokens: list[int]) -> str:
        return await self.runner.detokenize(tokens)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return await self.runner.embed(request)


class RecordingFactory(RunnerFactory):
    def __init__(self) -> None:
        self.real = ProcessRunnerFactory(spare=False)
        self.specs: list[RunnerSpec] = []
        self.seen: list[CompletionRequest] = []

    async def start(self, spec: RunnerSpec, *, load_timeout: float) -> Runner:
        self.specs.append(spec)
        return Recorded(await self.real.start(spec, load_timeout=load_timeout), self.seen)

    async def close(self) -> None:
        await self.real.close()


#: A GGUF chat template that thinks unless told not to (Qwen3's convention).
THINKING_JINJA = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% endif %}{% endif %}"
)
GO_TEMPLATE = "{{ range .Messages }}<{{ .Role }}>{{ .Content }}{{ end }}<assistant>"
WORDS = " ".join(f"word{i}" for i in range(120))


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path
) -> Iterator[tuple[TestClient, RecordingFactory]]:
    import tiny_gguf as tiny  # registry-fixtures/, on sys.path through conftest

    home = tmp_path_factory.mktemp("knobs")
    thinking = tiny.write_tiny_gguf(home / "think.gguf", seed=0, chat_template=THINKING_JINJA)
    models = home / "models"
    build_model(models, tiny_gguf, "jinja", "PARAMETER num_predict 2\n")
    build_model(models, tiny_gguf, "go", f'TEMPLATE """{GO_TEMPLATE}"""\nPARAMETER num_predict 2\n')
    build_model(
        models,
        tiny_gguf,
        "msgs",
        f'TEMPLATE """{GO_TEMPLATE}"""\nSYSTEM sys\nMESSAGE user {WORDS}\n'
        "MESSAGE assistant old-answer\nPARAMETER num_predict 2\n",
    )
    build_model(models, thinking, "thinker", "PARAMETER num_predict 2\n")
    cfg = Settings.from_env({"OCILLM_HOME": str(home), "OCILLM_MODELS": str(models)})
    factory = RecordingFactory()
    with TestClient(create_app(cfg, factory=factory), headers=HEADERS) as client:
        yield client, factory


SMALL = {"num_ctx": 64, "num_predict": 2, "temperature": 0}


def test_generate_truncates_a_long_prompt_unless_truncate_is_false(
    daemon: tuple[TestClient, RecordingFactory],
) -> None:
    client, factory = daemon
    body = {"model": "go", "prompt": WORDS, "options": SMALL, "stream": False}
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    sent = factory.seen[-1]
    assert sent.tokens is not None and 4 < len(sent.tokens) < 64  # cut to fit, as tokens
    assert 0 < r.json()["prompt_eval_count"] < 64
    r = client.post("/api/generate", json={**body, "truncate": False})
    assert (r.status_code, r.json()) == (
        400,
        {"error": "the input length exceeds the context length"},
    )


def test_generate_drops_the_images_message_turns_first(
    daemon: tuple[TestClient, RecordingFactory],
) -> None:
    """Ollama renders a generate on an image with MESSAGEs as a chat: those turns go first."""
    client, factory = daemon
    r = client.post(
        "/api/generate",
        json={"model": "msgs", "prompt": "latest question", "options": SMALL, "stream": False},
    )
    assert r.status_code == 200, r.text
    prompt = factory.seen[-1].prompt
    # The long MESSAGE user turn is the oldest: it goes; the rest fits.
    assert prompt == "<system>sys<assistant>old-answer<user>latest question<assistant>"


def test_chat_on_a_jinja_template_drops_old_turns_keeping_system_and_the_latest(
    daemon: tuple[TestClient, RecordingFactory],
) -> None:
    client, factory = daemon
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": WORDS},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "the latest question"},
    ]
    body = {"model": "jinja", "messages": messages, "options": SMALL, "stream": False}
    r = client.post("/api/chat", json=body)
    assert r.status_code == 200, r.text
    prompt = factory.seen[-1].prompt
    assert prompt is not None
    assert "be brief" in prompt and "the latest question" in prompt
    assert "word7" not in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    r = client.post("/api/chat", json={**body, "truncate": False})
    assert r.status_code == 400 and "exceeds the context length" in r.json()["error"]


def test_debug_render_only_answers_with_the_prompt_and_loads_nothing(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    models = tmp_path / "models"
    build_model(models, tiny_gguf, "go", f'TEMPLATE """{GO_TEMPLATE}"""\nSYSTEM sys\n')
    build_model(models, tiny_gguf, "jinja")
    cfg = Settings.from_env({"OCILLM_HOME": str(tmp_path), "OCILLM_MODELS": str(models)})
    factory = RecordingFactory()
    with TestClient(create_app(cfg, factory=factory), headers=HEADERS) as client:
        r = client.post(
            "/api/generate", json={"model": "go", "prompt": "hi", "_debug_render_only": True}
        )
        assert r.status_code == 200
        (chunk,) = [line for line in r.text.splitlines() if line.strip()]
        data = json.loads(chunk)
        assert data["_debug_info"] == {
            "rendered_template": "<system>sys<user>hi<assistant>",
            "image_count": 0,
        }
        assert data["model"] == "go" and data["done"] is False and data["response"] == ""
        r = client.post(
            "/api/chat",
            json={
                "model": "jinja",
                "messages": [{"role": "user", "content": "hello"}],
                "_debug_render_only": True,
                "stream": False,
            },
        )
        assert r.status_code == 200
        assert r.json()["_debug_info"] == {
            "rendered_template": "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
            "image_count": 0,
        }
        assert client.get("/api/ps").json() == {"models": []}
    assert factory.specs == [] and factory.seen == []


def test_think_reaches_a_jinja_chat_template(
    daemon: tuple[TestClient, RecordingFactory],
) -> None:
    client, _ = daemon

    def rendered(**extra: Any) -> str:
        body = {
            "model": "thinker",
            "messages": [{"role": "user", "content": "q"}],
            "_debug_render_only": True,
            "stream": False,
            **extra,
        }
        r = client.post("/api/chat", json=body)
        assert r.status_code == 200, r.text
        text: str = r.json()["_debug_info"]["rendered_template"]
        return text

    assert rendered(think=False).endswith("<think>\n\n</think>\n\n")
    assert rendered(think=True).endswith("<|im_start|>assistant\n")
    assert rendered().endswith("<|im_start|>assistant\n")  # a thinking model thinks by default
    show = client.post("/api/show", json={"model": "thinker"}).json()
    assert "thinking" in show["capabilities"]


def test_show_renders_the_requests_template(daemon: tuple[TestClient, RecordingFactory]) -> None:
    client, _ = daemon
    r = client.post("/api/show", json={"model": "go", "template": "{{ .Prompt }} override"})
    assert r.status_code == 200
    data = r.json()
    assert data["template"] == "{{ .Prompt }} override"
    assert "\nTEMPLATE {{ .Prompt }} override\n" in data["modelfile"]
    assert GO_TEMPLATE not in data["modelfile"]
    r = client.post("/api/show", json={"model": "go", "template": "{{ .Prompt"})
    assert r.status_code == 400 and r.json()["error"].startswith("template error:")


def test_openai_n_returns_n_choices(daemon: tuple[TestClient, RecordingFactory]) -> None:
    client, _ = daemon
    api = openai.OpenAI(base_url="http://localhost/v1", api_key="x", http_client=client)
    chat = api.chat.completions.create(
        model="jinja", messages=[{"role": "user", "content": "hi"}], n=3, max_tokens=2
    )
    assert [c.index for c in chat.choices] == [0, 1, 2]
    assert chat.usage is not None and chat.usage.completion_tokens == 6
    text = api.completions.create(model="go", prompt="hi", n=2, max_tokens=2)
    assert [c.index for c in text.choices] == [0, 1]
    with pytest.raises(openai.BadRequestError, match="n > 1 is not supported"):
        api.chat.completions.create(
            model="jinja", messages=[{"role": "user", "content": "hi"}], n=2, stream=True
        )


def test_debug_puts_llama_cpp_log_in_the_serve_log(
    tmp_path: Path, tiny_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"
    build_model(models, tiny_gguf, "tiny")
    env = {"OCILLM_HOME": str(tmp_path), "OCILLM_MODELS": str(models), "OCILLM_DEBUG": "1"}
    caplog.set_level(logging.DEBUG, logger="ocillm.runner")
    factory = RecordingFactory()
    with TestClient(create_app(Settings.from_env(env), factory=factory), headers=HEADERS) as c:
        r = c.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False})
        assert r.status_code == 200, r.text
    assert factory.specs[0].verbose
    # The runner's own stderr, line by line ("runner PID: ..."): llama.cpp's loading log.
    stderr = [
        rec.getMessage() for rec in caplog.records if re.match(r"runner \d+: ", rec.getMessage())
    ]
    assert any("llama" in line and "model" in line for line in stderr), stderr[-5:]


# --- DRAFT: speculative decoding through serve ------------------------------------------------


def test_a_draft_image_decodes_speculatively_with_the_same_answer(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families
    from server_fixtures import ServerProcess

    project = tmp_path / "project"
    project.mkdir()
    (project / "draft.gguf").write_bytes(tiny_gguf.read_bytes())
    models = tmp_path / "home" / "models"
    build_model(models, tiny_gguf, "plain")
    build_model(models, tiny_gguf, "drafted", f"DRAFT {project / 'draft.gguf'}\n")
    server = ServerProcess(tmp_path / "home").start()
    try:
        body = {"prompt": "hello", "raw": True, "stream": False}
        body["options"] = {"temperature": 0, "num_predict": 24, "draft_num_predict": 3}
        answers = {
            name: httpx.post(f"{server.url}/api/generate", json={**body, "model": name}).json()
            for name in ("plain", "drafted")
        }
        assert answers["drafted"]["response"] == answers["plain"]["response"]
        assert answers["drafted"]["eval_count"] == 24
        scraped = httpx.get(f"{server.url}/metrics").text
        samples = {
            (s.name, s.labels.get("model")): s.value
            for family in text_string_to_metric_families(scraped)
            for s in family.samples
        }
        proposed = samples[("ocillm_draft_tokens_total", "drafted:latest")]
        assert proposed > 0
        # The draft is the model itself: the model samples every token it proposes.
        assert samples[("ocillm_draft_accepted_tokens_total", "drafted:latest")] == proposed
        assert ("ocillm_draft_tokens_total", "plain:latest") not in samples
    finally:
        assert server.stop() == 0, server.log()[-3000:]

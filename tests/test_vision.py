"""Vision on the tiny model with a random CLIP projector (``registry-fixtures/tiny_mmproj.py``):
in-process through the engine (pictures are evaluated, cached like text, kept apart from other
sequences, bad ones refused), then through a live ``ocillm serve`` with the official ``ollama``
and ``openai`` clients on an image built from a Modelfile with the projector."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from server_fixtures import ServerProcess, build_model
from tiny_mmproj import IMAGE_TOKENS
from vision_support import b64, beside_a_stream, png, webp

from ocillm.runner.engine import Engine, EngineConfig, EngineError
from ocillm.runner.protocol import CompletionChunk, CompletionRequest

RED, BLUE = png(seed=1), png(seed=2)
RED_WEBP = webp(seed=1)  # RED's pixels
GREEDY = {"temperature": 0, "seed": 0, "num_predict": 12}


@pytest.fixture(scope="module")
def engine(tiny_gguf: Path, tiny_mmproj: Path) -> Iterator[Engine]:
    e = Engine(
        EngineConfig(model=tiny_gguf, projector=tiny_mmproj, n_ctx=256, n_parallel=2, n_batch=64)
    )
    yield e
    e.close()


def _ask(prompt: str, images: list[bytes], n: int = 12) -> CompletionRequest:
    return CompletionRequest(
        prompt=prompt, images=[b64(i) for i in images], temperature=0, num_predict=n, seed=0
    )


def _run(engine: Engine, req: CompletionRequest) -> tuple[str, CompletionChunk]:
    chunks = list(engine.complete(req))
    return "".join(c.content for c in chunks), chunks[-1]


# --- the engine ---------------------------------------------------------------------------------


def test_the_picture_is_evaluated_and_decides_the_output(engine: Engine) -> None:
    prompt = "look [img-0] what is it"
    text_tokens = len(engine.tokenize("look  what is it"))
    red, red_done = _run(engine, _ask(prompt, [RED]))
    blue, blue_done = _run(engine, _ask(prompt, [BLUE]))
    plain, plain_done = _run(engine, CompletionRequest(prompt=prompt, **GREEDY))
    assert red_done.done and blue_done.done
    # The picture's 16 positions are evaluated, beside the text's (give or take the tokenizer's
    # space handling where the text was split).
    assert abs(red_done.prompt_eval_count - (text_tokens + IMAGE_TOKENS)) <= 2
    assert red_done.prompt_eval_count > plain_done.prompt_eval_count
    assert red != blue  # two pictures, two greedy answers
    assert plain not in (red, blue)
    assert _run(engine, _ask(prompt, [RED]))[0] == red


def test_a_webp_picture_reads_as_the_same_pixels_in_png(engine: Engine) -> None:
    """llama.cpp reads no WebP; the runner decodes it (Pillow) into the pixels a PNG gives."""
    prompt = "look [img-0] what is it"
    red, red_done = _run(engine, _ask(prompt, [RED]))
    as_webp, webp_done = _run(engine, _ask(prompt, [RED_WEBP]))
    assert RED_WEBP[:4] == b"RIFF" and RED_WEBP != RED
    assert webp_done.prompt_eval_count == red_done.prompt_eval_count
    assert webp_done.prompt_cached < IMAGE_TOKENS  # other bytes: encoded anew, not the PNG's
    assert as_webp == red
    assert _run(engine, _ask(prompt, [webp(seed=2)]))[0] != red


def test_the_same_picture_is_found_in_the_cache_and_a_new_one_is_not(engine: Engine) -> None:
    first = "a chat [img-0] about a picture"
    _run(engine, _ask(first, [RED]))
    _, done = _run(engine, _ask(first + " and more", [RED]))
    assert done.prompt_cached > IMAGE_TOKENS  # the text and the picture before it
    _, other = _run(engine, _ask(first + " and more", [BLUE]))
    assert other.prompt_cached < IMAGE_TOKENS  # only the text before the picture


def test_a_picture_beside_other_sequences_gives_what_it_gives_alone(engine: Engine) -> None:
    requests = [
        _ask("one [img-0] two", [RED], n=16),
        CompletionRequest(prompt="the registry holds every model", **{**GREEDY, "num_predict": 16}),
        _ask("[img-0] and [img-1] together", [BLUE, RED], n=16),
    ]
    alone = [_run(engine, r)[0] for r in requests]
    results: list[str] = ["" for _ in requests]
    start = threading.Barrier(len(requests))

    def run(i: int) -> None:
        start.wait()
        results[i] = _run(engine, requests[i])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == alone


def test_a_picture_arriving_beside_a_stream_is_decoded_in_the_pacers_chunks(
    engine: Engine,
) -> None:
    """A picture is prompt rows like text: while a stream decodes, each step takes the pacer's
    chunk of it, so the stream never waits for the whole picture; neither output changes."""
    stream = CompletionRequest(prompt="the registry holds", **{**GREEDY, "num_predict": 120})
    picture = _ask("look [img-0] what is it", [BLUE])
    stream_alone, picture_alone = _run(engine, stream)[0], _run(engine, picture)[0]
    run = beside_a_stream(engine, picture, stream, rows=6)
    assert (run.stream, "".join(c.content for c in run.chunks)) == (stream_alone, picture_alone)
    # The picture's rows went in decodes of their own (one sequence), the pacer's six at most.
    at = [i for i, (tokens, seqs) in enumerate(run.steps) if seqs == 1 and tokens > 1]
    rows = [run.steps[i][0] for i in at]
    assert sum(rows) == IMAGE_TOKENS and max(rows) <= 6 and len(rows) >= 3, run.steps
    # Each step's token batch (the stream's token at least) came between two of them.
    assert all(b - a >= 2 for a, b in itertools.pairwise(at)), run.steps


@pytest.mark.parametrize(
    ("prompt", "images", "message"),
    [
        ("see [img-0] here", [b"this is not a picture"], "image 0 could not be decoded"),
        ("see [img-0] here", [RED[:60]], "image 0 could not be decoded"),  # a cut-off PNG
        ("see [img-0] here", [webp()[:40]], "image 0 could not be decoded: WebP"),  # cut off
        ("see [img-0] here", [b"RIFF\x10\0\0\0WEBPVP8 junk"], "image 0 could not be decoded"),
        ("see [img-1] here", [RED], "the prompt names [img-1], but 1 images were sent"),
        ("see [img-0] here", [RED, BLUE], "image 1 is not placed in the prompt"),
        ("see [img-0]", [RED], "the prompt ends with an image"),
    ],
)
def test_bad_pictures_are_the_clients_error(
    engine: Engine, prompt: str, images: list[bytes], message: str
) -> None:
    with pytest.raises(EngineError) as err:
        engine.complete(_ask(prompt, images))
    assert err.value.status == 400
    assert message in str(err.value)
    assert _run(engine, _ask("still [img-0] fine", [RED]))[1].done  # nothing was broken


def test_bad_base64_and_token_ids_with_pictures_are_refused(engine: Engine) -> None:
    with pytest.raises(EngineError, match="image 0 is not valid base64"):
        engine.complete(CompletionRequest(prompt="[img-0] x", images=["%%%"], **GREEDY))
    with pytest.raises(EngineError, match="not token ids"):
        engine.complete(CompletionRequest(tokens=[1, 2, 3], images=[b64(RED)], **GREEDY))


def test_a_model_without_a_projector_refuses_pictures(tiny_gguf: Path) -> None:
    e = Engine(EngineConfig(model=tiny_gguf, n_ctx=128))
    try:
        assert not e.vision
        with pytest.raises(EngineError, match="no vision projector") as err:
            e.complete(_ask("[img-0] x", [RED]))
        assert err.value.status == 400
    finally:
        e.close()


# --- the server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path, tiny_mmproj: Path
) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("serve-vision")
    build_model(home / "models", tiny_gguf, "seer", f"FROM {tiny_mmproj}\n")  # Ollama's way
    build_model(home / "models", tiny_gguf, "seer-adapter", f"ADAPTER {tiny_mmproj}\n")
    build_model(home / "models", tiny_gguf, "blind")
    proc = ServerProcess(home).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def test_a_model_with_a_projector_says_vision(server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)
    for name in ("seer", "seer-adapter"):
        assert "vision" in (client.show(name).capabilities or [])
    assert "vision" not in (client.show("blind").capabilities or [])


def test_ollama_generate_reads_the_picture(server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)
    red = client.generate("seer", "what is this", images=[RED], options=GREEDY)
    blue = client.generate("seer", "what is this", images=[BLUE], options=GREEDY)
    plain = client.generate("seer", "what is this", options=GREEDY)
    assert (red.prompt_eval_count or 0) >= (plain.prompt_eval_count or 0) + IMAGE_TOKENS
    assert red.response != blue.response
    raw = client.generate("seer-adapter", "[img-0] raw", images=[RED], raw=True, options=GREEDY)
    assert (raw.prompt_eval_count or 0) > IMAGE_TOKENS


def test_ollama_chat_reads_the_picture(server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)

    def ask(picture: bytes) -> ollama.ChatResponse:
        msgs = [{"role": "user", "content": "describe it", "images": [picture]}]
        return client.chat("seer", msgs, options=GREEDY)

    red, blue = ask(RED), ask(BLUE)
    assert (red.prompt_eval_count or 0) > IMAGE_TOKENS
    assert red.message.content != blue.message.content
    streamed = client.chat(
        "seer",
        [{"role": "user", "content": "describe it", "images": [RED]}],
        options=GREEDY,
        stream=True,
    )
    assert "".join(c.message.content or "" for c in streamed) == red.message.content


def test_the_rendered_prompt_tags_the_picture(server: ServerProcess) -> None:
    body = {
        "model": "seer",
        "messages": [{"role": "user", "content": "describe it", "images": [b64(RED)]}],
        "_debug_render_only": True,
        "stream": False,
    }
    out = httpx.post(f"{server.url}/api/chat", json=body, timeout=30).json()
    assert "[img-0]describe it" in out["_debug_info"]["rendered_template"]
    assert out["_debug_info"]["image_count"] == 1


def test_openai_image_url_parts_are_read(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")

    def ask(picture: bytes, kind: str = "png") -> openai.types.chat.ChatCompletion:
        return client.chat.completions.create(
            model="seer",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "describe it"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/{kind};base64,{b64(picture)}"},
                        },
                    ],
                }
            ],
            temperature=0,
            seed=0,
            max_tokens=12,
        )

    red, blue = ask(RED), ask(BLUE)
    assert red.usage is not None and red.usage.prompt_tokens > IMAGE_TOKENS
    assert red.choices[0].message.content != blue.choices[0].message.content
    # The same pixels as WebP, the kind llama.cpp cannot read itself: the same answer.
    assert ask(RED_WEBP, "webp").choices[0].message.content == red.choices[0].message.content


def test_bad_pictures_are_400s_and_the_runner_lives_on(server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)
    cases = [
        ([b"GIF89a but not really"], "image 0 could not be decoded"),
        ([RED[:50]], "image 0 could not be decoded"),
    ]
    for images, message in cases:
        with pytest.raises(ollama.ResponseError) as err:
            client.generate("seer", "what is this", images=images, options=GREEDY)
        assert err.value.status_code == 400
        assert message in err.value.error
    resp = httpx.post(
        f"{server.url}/api/generate",
        json={"model": "seer", "prompt": "x", "images": ["not base64!"], "stream": False},
        timeout=30,
    )
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid image input")
    pids = server.runner_pids()
    assert client.generate("seer", "what is this", images=[RED], options=GREEDY).done
    assert server.runner_pids() == pids  # the same runner: nothing crashed


def test_a_model_without_a_projector_is_still_a_400(server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as err:
        client.generate("blind", "what is this", images=[RED])
    assert (err.value.status_code, err.value.error) == (
        400,
        "this model is missing data required for image input",
    )


def test_ocillm_run_sends_a_picture_named_in_the_prompt(
    server: ServerProcess, tmp_path: Path
) -> None:
    picture = tmp_path / "red.png"
    picture.write_bytes(RED)

    def run(prompt: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ocillm", "run", "seer", "--verbose", prompt],
            env=server.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    seen = run(f"what is in {picture}")
    assert seen.returncode == 0, seen.stderr
    assert f"Added image '{picture}'" in seen.stderr
    plain = run("what is in it")
    assert "Added image" not in plain.stderr

    def count(out: subprocess.CompletedProcess[str]) -> int:
        found = re.search(r"prompt eval count:\s+(\d+)", out.stderr)
        assert found, out.stderr
        return int(found.group(1))

    assert count(seen) >= count(plain) + IMAGE_TOKENS - 2

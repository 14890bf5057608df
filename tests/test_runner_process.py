"""A real runner process on the tiny model: READY, generation equal to in-process llama-cpp-python,
streaming, cancellation, embeddings over a unix socket, a failed load, a killed runner."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ocillm.runner import (
    CompletionRequest,
    EmbeddingRequest,
    RunnerError,
    RunnerLoadError,
    RunnerProcess,
    RunnerSpec,
)

T = TypeVar("T")
N_CTX = 2048  # beyond the tiny model's trained 256: long generations to cancel
PROMPT = "<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def run(loop: asyncio.AbstractEventLoop) -> Any:
    def run(coro: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(asyncio.wait_for(coro, 60))

    return run


@pytest.fixture(scope="module")
def runner(run: Any, tiny_gguf: Path) -> Iterator[RunnerProcess]:
    # Flash attention on, here and in the reference below: it changes the logits' last bits,
    # enough to flip a seeded draw.
    spec = RunnerSpec(model=tiny_gguf, n_ctx=N_CTX, flash_attention="on")
    proc: RunnerProcess = run(RunnerProcess.start(spec))
    yield proc
    run(proc.stop())


def in_process(model: Path, max_tokens: int, **params: Any) -> str:
    """llama-cpp-python's own sampling of the same prompt: its tokens, spelled as the runner
    spells text (llama-cpp-python drops bytes that are not valid UTF-8; the runner shows them
    as U+FFFD, one per character the grammar would count)."""
    import llama_cpp

    from ocillm.runner.batch.text import Utf8Stream
    from ocillm.runner.llama_loader import open_llama

    llama = open_llama(model, n_ctx=N_CTX, verbose=False, seed=params.pop("seed"), flash_attn=True)
    try:
        prompt = llama.tokenize(PROMPT.encode(), add_bos=True, special=True)
        text = Utf8Stream()
        out = []
        for n, token in enumerate(llama.generate(prompt, **params)):
            if n == max_tokens or llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):
                break
            out.append(text.feed(llama.detokenize([token])))
        return "".join(out) + text.flush()
    finally:
        llama.close()


@pytest.mark.parametrize(("temperature", "seed"), [(0.0, 42), (0.8, 7)])
def test_generation_equals_in_process_llama_cpp(
    run: Any, runner: RunnerProcess, tiny_gguf: Path, temperature: float, seed: int
) -> None:
    req = CompletionRequest(prompt=PROMPT, temperature=temperature, seed=seed, num_predict=24)
    got = run(runner.complete(req))
    expected = in_process(
        tiny_gguf,
        max_tokens=24,
        temp=temperature,
        seed=seed,
        top_k=40,
        top_p=0.9,
        min_p=0.0,
        typical_p=1.0,
        repeat_penalty=1.0,
    )
    assert got.content == expected
    assert got.done and got.done_reason == "length" and got.eval_count == 24
    assert got.prompt_eval_count == len(run(runner.tokenize(PROMPT)))


def test_streaming_gives_tokens_then_the_metrics(run: Any, runner: RunnerProcess) -> None:
    async def collect() -> list[Any]:
        req = CompletionRequest(prompt=PROMPT, temperature=0, num_predict=10)
        return [c async for c in runner.completion(req)]

    chunks = run(collect())
    assert len(chunks) > 2
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done
    final = chunks[-1]
    assert final.eval_count == 10 and final.prompt_eval_duration > 0 and final.eval_duration > 0


def test_a_stop_sequence_ends_with_done_reason_stop(run: Any, runner: RunnerProcess) -> None:
    base = run(runner.complete(CompletionRequest(prompt=PROMPT, temperature=0, num_predict=24)))
    stop = base.content[8:11]
    assert len(stop) == 3
    out = run(
        runner.complete(
            CompletionRequest(prompt=PROMPT, temperature=0, num_predict=24, stop=[stop])
        )
    )
    assert out.done_reason == "stop"
    assert out.content == base.content[: base.content.index(stop)]


def test_tokenize_and_detokenize_round_trip(run: Any, runner: RunnerProcess) -> None:
    tokens = run(runner.tokenize("hello world", add_special=False))
    assert tokens and run(runner.detokenize(tokens)).strip() == "hello world"
    assert run(runner.tokenize("<|im_start|>", add_special=False)) == [3]


def test_errors_come_back_with_their_status(run: Any, runner: RunnerProcess) -> None:
    with pytest.raises(RunnerError, match="exceeds the context length") as err:
        run(runner.complete(CompletionRequest(prompt="hello " * 800)))
    assert err.value.http_status == 400
    assert run(runner.health())


def test_a_client_going_away_stops_the_generation(run: Any, runner: RunnerProcess) -> None:
    async def read_two_and_leave() -> None:
        # The grammar never lets the generation end (no EOS, plain ASCII), so only the client
        # leaving can stop it: a random-weight model may otherwise stop on its own after two
        # chunks, or emit bytes that never form UTF-8 (llama-cpp-python then holds text back).
        req = CompletionRequest(
            prompt="hello", num_predict=-1, temperature=1, seed=1, grammar='root ::= "ab" root'
        )
        stream = runner.completion(req)
        n = 0
        async for _ in stream:
            n += 1
            if n == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]

    run(read_two_and_leave())
    deadline = time.monotonic() + 5
    while not any("cancelled" in line for line in runner.stderr_tail):
        assert time.monotonic() < deadline, "\n".join(runner.stderr_tail)
        run(asyncio.sleep(0.02))  # the stderr reader runs on the loop
    health = run(runner._client.health())
    assert health.slots_busy == 0
    out = run(runner.complete(CompletionRequest(prompt=PROMPT, num_predict=3, temperature=0)))
    assert out.eval_count == 3


def test_embeddings_over_a_unix_socket(run: Any, tiny_embed_gguf: Path) -> None:
    async def main() -> None:
        spec = RunnerSpec(model=tiny_embed_gguf, n_ctx=N_CTX, embedding=True)
        proc = await RunnerProcess.start(spec, unix_socket=True)
        try:
            texts = ["hello world", "the model", "hello world"]
            out = await proc.embed(EmbeddingRequest(input=texts))
            assert len(out.embeddings) == 3 and out.prompt_eval_count > 0
            for v in out.embeddings:
                assert sum(x * x for x in v) == pytest.approx(1.0, abs=1e-4)
            assert out.embeddings[0] == pytest.approx(out.embeddings[2])
            assert out.embeddings[0] != pytest.approx(out.embeddings[1])
            raw = await proc.embed(EmbeddingRequest(input=texts[:1], normalize=False))
            norm = sum(x * x for x in raw.embeddings[0]) ** 0.5
            assert [x / norm for x in raw.embeddings[0]] == pytest.approx(out.embeddings[0])
            with pytest.raises(RunnerError, match="embeddings, not completion"):
                await proc.complete(CompletionRequest(prompt="x"))
        finally:
            await proc.stop()
        assert not proc.is_alive()

    run(main())


def test_a_failed_load_explains_itself(run: Any, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    with pytest.raises(
        RunnerLoadError,
        match=r"terminated: exit status 1: llama.cpp error: .*failed to load model \| error: loading",
    ):
        run(RunnerProcess.start(RunnerSpec(model=bogus), load_timeout=30))


def test_a_killed_runner_is_reported_dead(run: Any, tiny_gguf: Path) -> None:
    async def main() -> None:
        proc = await RunnerProcess.start(RunnerSpec(model=tiny_gguf, n_ctx=64))
        assert proc.is_alive() and await proc.health()
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises(RunnerError, match="terminated: killed by SIGKILL"):
            await proc.complete(CompletionRequest(prompt="hello", num_predict=4))
        assert not proc.is_alive()
        assert not await proc.health()
        await proc.stop()

    run(main())


def test_stop_ends_the_process_by_pid(run: Any, tiny_gguf: Path) -> None:
    async def main() -> int:
        proc = await RunnerProcess.start(RunnerSpec(model=tiny_gguf, n_ctx=64))
        assert proc.pid is not None
        await proc.stop()
        await proc.stop()  # twice is fine
        assert proc.returncode == 0  # SIGTERM: a clean exit
        return proc.pid

    pid = run(main())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

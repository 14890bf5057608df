"""The model inside a runner process: llama-cpp-python behind completion, embedding, tokenizing.

Each slot is one ``llama_cpp.Llama`` (mmap on, so CPU slots share the weights through the page
cache). A request takes the free slot whose KV cache shares the longest prefix with its prompt;
llama-cpp-python then evaluates only the new suffix. With layers on a GPU there is one slot (the
weights would be copied per slot), and requests take turns.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocillm.runner.llama_loader import Repack, open_llama
from ocillm.runner.protocol import (
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from ocillm.runner.stops import StopScanner


class EngineError(Exception):
    """A request the model cannot serve (``status`` is the HTTP status the runner answers)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class EngineConfig:
    model: Path
    n_ctx: int = 2048  # per slot
    n_gpu_layers: int = 0
    n_parallel: int = 1
    n_threads: int | None = None
    n_batch: int = 512
    use_mmap: bool = True
    embedding: bool = False
    loras: tuple[Path, ...] = ()
    main_gpu: int = 0
    tensor_split: tuple[float, ...] = ()
    verbose: bool = False
    seed: int = field(default=0xFFFFFFFF)
    repack: Repack = "auto"

    @property
    def n_slots(self) -> int:
        if self.embedding or self.n_gpu_layers != 0:
            return 1
        return max(self.n_parallel, 1)


def _load(config: EngineConfig) -> Any:
    if len(config.loras) > 1:
        raise EngineError("only one LoRA adapter per model is supported", status=500)
    return open_llama(
        config.model,
        repack=config.repack,
        n_ctx=config.n_ctx,
        # An embedding is computed in one batch: a smaller batch would cut inputs at its size.
        n_batch=config.n_ctx if config.embedding else min(config.n_batch, config.n_ctx),
        n_ubatch=config.n_ctx if config.embedding else min(config.n_batch, config.n_ctx),
        n_gpu_layers=config.n_gpu_layers,
        n_threads=config.n_threads,
        use_mmap=config.use_mmap,
        embedding=config.embedding,
        lora_path=str(config.loras[0]) if config.loras else None,
        main_gpu=config.main_gpu,
        tensor_split=list(config.tensor_split) or None,
        seed=config.seed,
        verbose=config.verbose,
    )


class _Slot:
    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.busy = False

    def cached_prefix(self, tokens: list[int]) -> int:
        cached = self.llama._input_ids  # the tokens whose KV the context holds
        n = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            n += 1
        return n


class _Meter:
    """A stopping criterion that measures: first-token time, tokens sampled, and cancellation."""

    def __init__(self, cancelled: Callable[[], bool]) -> None:
        self.cancelled = cancelled
        self.prompt_tokens = 0
        self.sampled = 0
        self.first_ns = 0
        self.stopped = False

    def __call__(self, input_ids: Any, _logits: Any) -> bool:
        if self.stopped:
            return True
        if self.sampled == 0:
            self.first_ns = time.perf_counter_ns()
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        self.stopped = self.cancelled()
        return self.stopped


class Engine:
    def __init__(self, config: EngineConfig, load: Callable[[EngineConfig], Any] = _load) -> None:
        self.config = config
        self._slots = [_Slot(load(config)) for _ in range(config.n_slots)]
        self._free = threading.Condition()
        self._grammars: dict[str, Any] = {}
        self.n_ctx = int(self._slots[0].llama.n_ctx())
        self.n_vocab = int(self._slots[0].llama.n_vocab())
        self._longest_token: int | None = None

    @property
    def extra_buffer_types(self) -> bool:
        """Whether llama.cpp loaded the weights with extra buffer types (repacked)."""
        params = getattr(self._slots[0].llama, "model_params", None)
        return bool(getattr(params, "use_extra_bufts", False))

    @property
    def slots(self) -> tuple[int, int]:
        """(idle, busy)."""
        busy = sum(s.busy for s in self._slots)
        return len(self._slots) - busy, busy

    def _take(self, tokens: list[int] | None) -> _Slot:
        with self._free:
            while True:
                idle = [s for s in self._slots if not s.busy]
                if idle:
                    slot = max(idle, key=lambda s: s.cached_prefix(tokens)) if tokens else idle[0]
                    slot.busy = True
                    return slot
                self._free.wait()

    def _give(self, slot: _Slot) -> None:
        with self._free:
            slot.busy = False
            self._free.notify()

    # --- tokens ---------------------------------------------------------------------------

    def tokenize(
        self, text: str, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        llama = self._slots[0].llama  # the tokenizer is stateless: any slot will do
        return list(llama.tokenize(text.encode(), add_bos=add_special, special=parse_special))

    def detokenize(self, tokens: list[int]) -> str:
        self.check_tokens(tokens)
        data: bytes = self._slots[0].llama.detokenize(tokens)
        return data.decode("utf-8", errors="replace")

    def check_tokens(self, tokens: list[int]) -> None:
        """llama.cpp indexes its vocabulary with these unchecked: one bad id aborts the process
        (``std::out_of_range``), taking every request on this runner with it."""
        for token in tokens:
            if not 0 <= token < self.n_vocab:
                raise EngineError(
                    f"token id {token} is out of range (the vocabulary has {self.n_vocab} tokens)"
                )

    def longest_token(self) -> int:
        """Bytes in the vocabulary's longest token: a text with more bytes than ``n_ctx`` times
        this cannot fit the context, whatever its tokens."""
        if self._longest_token is None:
            llama = self._slots[0].llama
            self._longest_token = max(
                (len(llama.detokenize([t], special=True)) for t in range(self.n_vocab)), default=1
            )
        return max(self._longest_token, 1)

    # --- completion -----------------------------------------------------------------------

    def _grammar(self, text: str) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        if text not in self._grammars:
            self._check_grammar(text)
            self._grammars[text] = LlamaGrammar.from_string(text, verbose=False)
        return self._grammars[text]

    def _check_grammar(self, text: str) -> None:
        """Parse ``text`` with llama.cpp once; a grammar it rejects would crash the sampler."""
        import llama_cpp

        vocab = self._slots[0].llama._model.vocab
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode(), b"root")
        if not sampler:
            raise EngineError("invalid grammar: llama.cpp could not parse it (GBNF, rule 'root')")
        llama_cpp.llama_sampler_free(sampler)

    def complete(
        self, req: CompletionRequest, cancelled: Callable[[], bool] = lambda: False
    ) -> Iterator[CompletionChunk]:
        """Stream the completion; the last chunk has ``done`` and the metrics.

        Errors the request can cause (prompt longer than the context, bad grammar) are raised
        here, before the first chunk, as :class:`EngineError`. When ``cancelled()`` turns true the
        generation stops within one token and no final chunk is produced.
        """
        if self.config.embedding:
            raise EngineError("this runner was loaded for embeddings, not completion")
        too_long = "the input length ({}) exceeds the context length ({})"
        if req.tokens is not None:
            self.check_tokens(req.tokens)
            tokens = list(req.tokens)
        else:
            text = (req.prompt or "").encode()
            # Not tokenized at all when it cannot fit: a 10 MB text takes seconds.
            if len(text) > self.n_ctx and len(text) > self.n_ctx * self.longest_token():
                raise EngineError(too_long.format(f"{len(text)} bytes", self.n_ctx))
            tokens = list(self._slots[0].llama.tokenize(text, add_bos=req.add_bos, special=True))
        grammar = self._grammar(req.grammar) if req.grammar else None
        if len(tokens) >= self.n_ctx:
            raise EngineError(too_long.format(f"{len(tokens)} tokens", self.n_ctx))
        stream = self._generate(req, tokens, grammar, cancelled)
        try:
            first = next(stream)
        except StopIteration:
            return iter(())
        return _chain(first, stream)

    def _generate(
        self,
        req: CompletionRequest,
        prompt: list[int],
        grammar: Any,
        cancelled: Callable[[], bool],
    ) -> Iterator[CompletionChunk]:
        from llama_cpp import StoppingCriteriaList

        if req.num_predict == 0:
            yield CompletionChunk(done=True, done_reason="length", prompt_eval_count=len(prompt))
            return
        slot = self._take(prompt)
        try:
            llama = slot.llama
            llama.last_n_tokens_size = self.n_ctx if req.repeat_last_n < 0 else req.repeat_last_n
            meter = _Meter(cancelled)
            # llama.cpp's seed is a uint32 (0xFFFFFFFF: random); any int64 maps onto it.
            seed = (
                req.seed % 0xFFFFFFFF if req.seed >= 0 else random.SystemRandom().randrange(2**31)
            )
            start = time.perf_counter_ns()
            if not _prefill(llama, prompt, cancelled):
                return
            reason = "length"
            chunks = llama.create_completion(
                prompt,
                max_tokens=req.num_predict if req.num_predict > 0 else None,
                temperature=req.temperature,
                top_k=req.top_k,
                top_p=req.top_p,
                min_p=req.min_p,
                typical_p=req.typical_p,
                repeat_penalty=req.repeat_penalty,
                presence_penalty=req.presence_penalty,
                frequency_penalty=req.frequency_penalty,
                seed=seed,
                stop=[],  # scanned below, so the sequence that ended the text is known
                stream=True,
                grammar=grammar,
                stopping_criteria=StoppingCriteriaList([meter]),
            )
            stops = StopScanner(req.stop)
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    if text := stops.add(choice["text"]):
                        yield CompletionChunk(content=text)
                    if choice.get("finish_reason"):
                        reason = choice["finish_reason"]
                    if meter.stopped:
                        return
                    if stops.matched is not None:
                        reason = "stop"
                        break
            except ValueError as err:
                raise EngineError(str(err)) from None
            except RuntimeError:
                # llama-cpp-python can decode one token past a full KV cache ("llama_decode
                # returned 1"): the context is full, which ends a generation with "length".
                if llama.n_tokens < self.n_ctx - 1:
                    raise
                reason = "length"
            finally:
                chunks.close()
            if meter.stopped:
                return
            if rest := stops.finish():
                yield CompletionChunk(content=rest)
            end = time.perf_counter_ns()
            first = meter.first_ns or end
            yield CompletionChunk(
                done=True,
                done_reason="length" if reason == "length" else "stop",
                prompt_eval_count=meter.prompt_tokens or len(prompt),
                prompt_eval_duration=first - start,
                eval_count=min(meter.sampled, req.num_predict)
                if req.num_predict > 0
                else meter.sampled,
                eval_duration=end - first,
                stop_sequence=stops.matched,
            )
        finally:
            self._give(slot)

    # --- embeddings -----------------------------------------------------------------------

    def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        if not self.config.embedding:
            raise EngineError("this runner was not loaded for embeddings")
        if not req.input:
            return EmbeddingResponse(embeddings=[], prompt_eval_count=0)
        if not req.truncate:
            for text in req.input:
                if len(self.tokenize(text)) > self.n_ctx:
                    raise EngineError("the input length exceeds the context length")
        slot = self._take(None)
        try:
            vectors, count = slot.llama.embed(
                list(req.input), normalize=False, truncate=True, return_count=True
            )
        except ValueError as err:
            raise EngineError(str(err)) from None
        finally:
            self._give(slot)
        pooled = [_pool(v) for v in vectors]
        if req.normalize:
            pooled = [_normalize(v) for v in pooled]
        return EmbeddingResponse(embeddings=pooled, prompt_eval_count=int(count))

    def close(self) -> None:
        for slot in self._slots:
            slot.llama.close()


def _prefill(llama: Any, tokens: list[int], cancelled: Callable[[], bool]) -> bool:
    """Evaluate the prompt but its last batch, ``n_batch`` tokens at a time, asking
    ``cancelled()`` between batches; False when it turned true. llama-cpp-python's own
    evaluation runs to the end of the prompt unasked (seconds on a long one); after this,
    ``create_completion`` finds the prefix in the KV cache and evaluates only the last batch."""
    cached = 0
    for a, b in zip(llama._input_ids, tokens, strict=False):
        if a != b:
            break
        cached += 1
    # The last batch is left to create_completion, so the batches are the ones it would make
    # itself (the logits, hence seeded samples, depend on where the batches split).
    remaining = len(tokens) - cached
    target = len(tokens) - (remaining % llama.n_batch or llama.n_batch)
    if target <= cached:
        return not cancelled()  # one batch at most: the cache stays create_completion's to reuse
    if cached < llama.n_tokens:
        if not llama._ctx.kv_cache_seq_rm(-1, cached, -1):
            llama.reset()  # no partial removal (recurrent models): evaluate from the start
            return _prefill(llama, tokens, cancelled)
        llama.n_tokens = cached
    while llama.n_tokens < target:
        if cancelled():
            return False
        llama.eval(tokens[llama.n_tokens : min(target, llama.n_tokens + llama.n_batch)])
    return not cancelled()


def _pool(vector: Any) -> list[float]:
    """One vector per input: a model without pooling gives one per token, averaged here."""
    if vector and isinstance(vector[0], (list, tuple)):
        n = len(vector)
        return [float(sum(col)) / n for col in zip(*vector, strict=False)]
    return [float(x) for x in vector]


def _normalize(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else vector


def _chain(first: CompletionChunk, rest: Iterator[CompletionChunk]) -> Iterator[CompletionChunk]:
    try:
        yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()

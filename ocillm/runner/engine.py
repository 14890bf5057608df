"""The model inside a runner process: llama-cpp-python behind completion, embedding, tokenizing.

Completion: one llama.cpp context holds ``n_parallel`` sequences of ``n_ctx`` tokens each, and
one decode loop (``batch/loop.py``) advances all of them with one ``llama_decode`` a step, on the
CPU and with layers on a GPU alike. A request takes the free sequence whose KV cache shares the
longest prefix with its prompt and evaluates only the rest. With a projector (``vision.py``) a
prompt's ``[img-N]`` tags become the pictures' embeddings. Embeddings keep llama-cpp-python's
own ``Llama.embed`` (one batch per call).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ocillm.runner.batch.draft import Drafter
from ocillm.runner.batch.loop import DecodeLoop, Job
from ocillm.runner.batch.sampling import Sampler, SamplerError
from ocillm.runner.errors import EngineError
from ocillm.runner.llama_loader import ContextOverrides, Repack, open_llama
from ocillm.runner.protocol import (
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    RerankRequest,
    RerankResponse,
)
from ocillm.runner.rerank import PairTooLong, is_reranker, rank
from ocillm.runner.stops import StopScanner
from ocillm.runner.vision import ImageBatch, Vision, VisionPrompt, decode_images

#: What a reranker says when asked for embeddings (llama.cpp pools it to scores, not vectors).
RERANKER_EMBEDS = (
    "this model is a reranker: it scores documents against a query (/api/rerank), "
    "it gives no embeddings"
)


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
    kv_cache_type: KvCacheType = "f16"
    flash_attention: FlashAttention = "auto"
    draft: Path | None = None  # speculative decoding: a smaller model with the same vocabulary
    projector: Path | None = None  # a vision model's image encoder (mmproj GGUF)

    @property
    def n_slots(self) -> int:
        return 1 if self.embedding else max(self.n_parallel, 1)


KvCacheType = Literal["f16", "q8_0", "q4_0"]
FlashAttention = Literal["auto", "on", "off"]
KV_CACHE_TYPES: tuple[KvCacheType, ...] = ("f16", "q8_0", "q4_0")
FLASH_ATTENTION_CHOICES: tuple[FlashAttention, ...] = ("auto", "on", "off")


def _ggml_type(name: KvCacheType) -> int:
    import llama_cpp

    return int(getattr(llama_cpp, f"GGML_TYPE_{name.upper()}"))


def _shared(config: EngineConfig) -> dict[str, Any]:
    """What every load of ``config`` passes to llama-cpp-python, completion or embedding."""
    if len(config.loras) > 1:
        raise EngineError("only one LoRA adapter per model is supported", status=500)
    return {
        "repack": config.repack,
        "n_gpu_layers": config.n_gpu_layers,
        "n_threads": config.n_threads,
        "use_mmap": config.use_mmap,
        "lora_path": str(config.loras[0]) if config.loras else None,
        "main_gpu": config.main_gpu,
        "tensor_split": list(config.tensor_split) or None,
        "seed": config.seed,
        "verbose": config.verbose,
    }


def _load_batched(config: EngineConfig) -> Any:
    """One context for every sequence: ``n_slots x n_ctx`` cells in one unified pool (as
    llama-server's default: one attention over the pool is half again faster on a CPU than a
    split per sequence: measured 112 vs 74 tokens/s for 4 Gemma streams). The decode loop keeps
    each sequence within its own ``n_ctx``, so the pool cannot run out and no chat starves
    another."""
    shared = _shared(config)
    n_seq = config.n_slots
    n_batch = max(min(config.n_batch, config.n_ctx), n_seq)
    kv = _ggml_type(config.kv_cache_type)
    return open_llama(
        config.model,
        context=ContextOverrides(
            n_seq_max=n_seq,
            kv_unified=True,
            flash_attn={"auto": -1, "off": 0, "on": 1}[config.flash_attention],
            type_k=kv,
            type_v=kv,
        ),
        n_ctx=config.n_ctx * n_seq,
        n_batch=n_batch,
        n_ubatch=n_batch,
        **shared,
    )


def _load(config: EngineConfig) -> Any:
    shared = _shared(config)
    # An embedding is computed in one batch: a smaller batch would cut inputs at its size.
    n_batch = config.n_ctx if config.embedding else min(config.n_batch, config.n_ctx)
    return open_llama(
        config.model,
        n_ctx=config.n_ctx,
        n_batch=n_batch,
        n_ubatch=n_batch,
        embedding=config.embedding,
        **shared,
    )


class _Slot:
    """An embedding model's ``llama_cpp.Llama`` (embeddings take turns: one batch each)."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.busy = False


class Engine:
    def __init__(self, config: EngineConfig, load: Callable[[EngineConfig], Any] = _load) -> None:
        self.config = config
        self._longest_token: int | None = None
        self._loop: DecodeLoop | None = None
        self._vision: Vision | None = None
        self._free = threading.Condition()
        if config.embedding:
            self._slots = [_Slot(load(config))]
            self._llama = self._slots[0].llama
            self.n_ctx = int(self._llama.n_ctx())
        else:
            self._slots = []
            self._llama = _load_batched(config)
            drafter = self._load_draft(config) if config.draft is not None else None
            images = self._load_projector(config) if config.projector is not None else None
            self._loop = DecodeLoop(
                self._llama, config.n_slots, config.n_batch, config.n_ctx, drafter, images
            )
            self.n_ctx = self._loop.n_ctx  # per sequence
        self.n_vocab = int(self._llama.n_vocab())

    def _load_draft(self, config: EngineConfig) -> Drafter:
        assert config.draft is not None
        llama = _load_batched(dataclasses.replace(config, model=config.draft, loras=()))
        theirs, ours = int(llama.n_vocab()), int(self._llama.n_vocab())
        if theirs != ours:
            llama.close()
            self._llama.close()
            raise EngineError(
                f"the draft model's vocabulary ({theirs} tokens) is not the model's ({ours}): "
                "a draft must share the tokenizer",
                status=500,
            )
        return Drafter(llama, config.n_slots, max(min(config.n_batch, config.n_ctx), 1))

    def _load_projector(self, config: EngineConfig) -> ImageBatch:
        assert config.projector is not None
        try:
            self._vision = Vision(
                config.projector,
                self._llama,
                n_threads=config.n_threads,
                use_gpu=config.n_gpu_layers != 0,
            )
        except EngineError:
            self._llama.close()
            raise
        n_batch = max(min(config.n_batch, config.n_ctx), config.n_slots)
        return ImageBatch(self._llama._ctx.ctx, n_batch, self._vision.n_embd)

    @property
    def vision(self) -> bool:
        """Whether the model reads images (it was loaded with a projector)."""
        return self._vision is not None

    @property
    def extra_buffer_types(self) -> bool:
        """Whether llama.cpp loaded the weights with extra buffer types (repacked)."""
        params = getattr(self._llama, "model_params", None)
        return bool(getattr(params, "use_extra_bufts", False))

    @property
    def slots(self) -> tuple[int, int]:
        """(idle, busy)."""
        if self._loop is not None:
            return self._loop.slots
        busy = sum(s.busy for s in self._slots)
        return len(self._slots) - busy, busy

    def _take(self) -> _Slot:
        with self._free:
            while True:
                for slot in self._slots:
                    if not slot.busy:
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
        return list(self._llama.tokenize(text.encode(), add_bos=add_special, special=parse_special))

    def detokenize(self, tokens: list[int]) -> str:
        self.check_tokens(tokens)
        data: bytes = self._llama.detokenize(tokens)
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
            llama = self._llama
            self._longest_token = max(
                (len(llama.detokenize([t], special=True)) for t in range(self.n_vocab)), default=1
            )
        return max(self._longest_token, 1)

    # --- completion -----------------------------------------------------------------------

    def _sampler(self, req: CompletionRequest) -> Sampler:
        try:
            return Sampler(req, self._llama._model.vocab, self.n_vocab, self.n_ctx)
        except SamplerError as err:
            raise EngineError(str(err)) from None

    def complete(
        self, req: CompletionRequest, cancelled: Callable[[], bool] = lambda: False
    ) -> Iterator[CompletionChunk]:
        """Stream the completion; the last chunk has ``done`` and the metrics.

        Errors the request can cause (prompt longer than the context, bad grammar) are raised
        here, before the first chunk, as :class:`EngineError`. When ``cancelled()`` turns true the
        generation stops within one decode step and no final chunk is produced.
        """
        if self._loop is None:
            raise EngineError("this runner was loaded for embeddings, not completion")
        too_long = "the input length ({}) exceeds the context length ({})"
        if req.prompt is not None:
            # Not tokenized at all when it cannot fit: a 10 MB text takes seconds.
            # (The vocabulary's longest token costs a pass over it, half a second on Gemma's
            # 262k tokens: asked only of a text too big to simply tokenize.)
            text = req.prompt.encode()
            if len(text) > 16 * self.n_ctx and len(text) > self.n_ctx * self.longest_token():
                raise EngineError(too_long.format(f"{len(text)} bytes", self.n_ctx))
        pictures: VisionPrompt | None = None
        if req.images:
            pictures = self._pictures(req)
            tokens = pictures.tokens
        elif req.tokens is not None:
            self.check_tokens(req.tokens)
            tokens = list(req.tokens)
        else:
            tokens = list(self._llama.tokenize(text, add_bos=req.add_bos, special=True))
        if len(tokens) >= self.n_ctx:
            raise EngineError(too_long.format(f"{len(tokens)} tokens", self.n_ctx))
        if not tokens:
            raise EngineError("the prompt is empty (no tokens to evaluate)")
        sampler = self._sampler(req)
        if req.num_predict == 0:
            sampler.close()
            return iter(
                [CompletionChunk(done=True, done_reason="length", prompt_eval_count=len(tokens))]
            )
        job = Job(
            req=req,
            prompt=tokens,
            sampler=sampler,
            cancelled=cancelled,
            stops=StopScanner(req.stop),
            images=pictures.images if pictures is not None else (),
        )
        return self._loop.submit(job)

    def _pictures(self, req: CompletionRequest) -> VisionPrompt:
        """The prompt with its pictures, checked against what the decode loop can take."""
        assert self._loop is not None
        if self._vision is None:
            raise EngineError("this model has no vision projector: it cannot read images")
        if req.prompt is None:
            raise EngineError("images need a prompt with [img-N] tags, not token ids")
        prompt = self._vision.prompt(req.prompt, decode_images(req.images), add_special=req.add_bos)
        if prompt.images and prompt.images[-1].end == len(prompt.tokens):
            raise EngineError("the prompt ends with an image: the model needs text after it")
        for run in prompt.images:
            if run.non_causal and run.n_tokens > self._loop.n_batch:
                raise EngineError(
                    f"an image takes {run.n_tokens} tokens and this model reads an image in "
                    f"one batch: set num_batch to at least {run.n_tokens}"
                )
        return prompt

    # --- embeddings -----------------------------------------------------------------------

    def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        if not self.config.embedding:
            raise EngineError("this runner was not loaded for embeddings")
        if is_reranker(self._slots[0].llama):  # it pools one score per input, not a vector
            raise EngineError(RERANKER_EMBEDS)
        if not req.input:
            return EmbeddingResponse(embeddings=[], prompt_eval_count=0)
        if not req.truncate:
            for text in req.input:
                if len(self.tokenize(text)) > self.n_ctx:
                    raise EngineError("the input length exceeds the context length")
        slot = self._take()
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

    # --- rerank ---------------------------------------------------------------------------

    def rerank(self, req: RerankRequest) -> RerankResponse:
        if not self.config.embedding or not is_reranker(self._slots[0].llama):
            raise EngineError("this model cannot rerank: its pooling type is not rank")
        if not req.documents:
            return RerankResponse(scores=[], prompt_eval_count=0)
        slot = self._take()
        try:
            scores, count = rank(slot.llama, req.query, req.documents, truncate=req.truncate)
        except PairTooLong as err:
            raise EngineError(str(err)) from None
        finally:
            self._give(slot)
        return RerankResponse(scores=scores, prompt_eval_count=count)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
        if self._vision is not None:
            self._vision.close()
        self._llama.close()


def _pool(vector: Any) -> list[float]:
    """One vector per input: a model without pooling gives one per token, averaged here."""
    if vector and isinstance(vector[0], (list, tuple)):
        n = len(vector)
        return [float(sum(col)) / n for col in zip(*vector, strict=False)]
    return [float(x) for x in vector]


def _normalize(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else vector

"""What a request asks of the scheduler: which model, loaded how, kept how long, how urgent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ocillm.gpu.estimate import ModelShape


@dataclass(frozen=True)
class LoadOptions:
    """The runner-relevant options (Ollama's ``api.Runner``). A change means a reload."""

    num_ctx: int = 4096  # tokens per parallel slot
    num_batch: int = 512
    num_gpu: int = -1  # layers to offload: -1 automatic, 0 CPU only
    num_thread: int = 0  # 0: llama.cpp's choice
    use_mmap: bool | None = None  # None: automatic (on)
    embedding: bool = False
    main_gpu: int | None = None  # the GPU (runtime ordinal) for small tensors; None: the first

    def reload_key(self) -> tuple[int, int, int, int, bool, bool, int]:
        """What must be equal for a loaded runner to serve these options."""
        return (
            max(self.num_ctx, 4),
            self.num_batch,
            -1 if self.num_gpu < 0 else self.num_gpu,
            self.num_thread,
            True if self.use_mmap is None else self.use_mmap,
            self.embedding,
            self.main_gpu or 0,
        )


@dataclass(frozen=True)
class LoadRequest:
    """One request's view of its model. ``keep_alive`` in seconds (see ``parse_keep_alive``):
    ``None`` keeps the runner's current value (the default at first load), 0 unloads after the
    request, ``inf`` never. Higher ``priority`` is served first; equal priorities are FIFO."""

    model_path: Path
    name: str = ""  # what /api/ps shows
    digest: str = ""
    adapters: tuple[Path, ...] = ()
    draft: Path | None = None  # speculative decoding's draft model
    projector: Path | None = None  # a vision model's image encoder (mmproj GGUF)
    options: LoadOptions = field(default_factory=LoadOptions)
    keep_alive: float | None = None
    priority: int = 0
    shape: ModelShape | None = None  # None: read from the GGUF at load time

    @property
    def display_name(self) -> str:
        return self.name or self.model_path.name

    def needs_reload(self, loaded: LoadRequest) -> bool:
        """Whether a runner started for ``loaded`` cannot serve this request."""
        return (
            self.model_path != loaded.model_path
            or self.adapters != loaded.adapters
            or self.draft != loaded.draft
            or self.projector != loaded.projector
            or self.options.reload_key() != loaded.options.reload_key()
        )

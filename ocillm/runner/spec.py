"""What a runner process is started with: its command line and the environment that picks GPUs."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

#: The variable that restricts a runtime to the GPUs it may use.
VISIBLE_DEVICES = {"cuda": "CUDA_VISIBLE_DEVICES", "rocm": "HIP_VISIBLE_DEVICES"}


@dataclass(frozen=True)
class RunnerSpec:
    model: Path
    n_ctx: int = 2048  # per slot
    n_gpu_layers: int = 0
    n_parallel: int = 1
    n_threads: int = 0  # 0: llama.cpp's choice
    n_batch: int = 512
    use_mmap: bool = True
    embedding: bool = False
    loras: tuple[Path, ...] = ()
    gpu_library: str | None = None  # "cuda", "rocm", "metal" (set on the CPU too, to hide GPUs)
    gpu_indices: tuple[int, ...] = ()
    main_gpu: int = 0  # among the visible GPUs (llama.cpp's --main-gpu)
    tensor_split: tuple[float, ...] = ()
    verbose: bool = False
    repack: str = "auto"  # llama.cpp extra buffer types: auto (off on AMX CPUs), on, off
    draft: Path | None = None  # speculative decoding's draft model
    projector: Path | None = None  # image encoder (mmproj GGUF) of a vision model
    kv_cache_type: str = "f16"  # f16, q8_0, q4_0
    flash_attention: str = "auto"  # auto, on, off

    def argv(self, python: str = sys.executable) -> list[str]:
        """The command line, without the listening address (``--port``/``--socket``)."""
        args = [
            python,
            "-m",
            "ocillm.runner",
            "--model",
            str(self.model),
            "--n-ctx",
            str(self.n_ctx),
            "--n-gpu-layers",
            str(self.n_gpu_layers),
            "--n-parallel",
            str(self.n_parallel),
            "--n-threads",
            str(self.n_threads),
            "--n-batch",
            str(self.n_batch),
            "--watch-stdin",
        ]
        if not self.use_mmap:
            args.append("--no-mmap")
        if self.embedding:
            args.append("--embedding")
        for lora in self.loras:
            args += ["--lora", str(lora)]
        if self.draft is not None:
            args += ["--draft", str(self.draft)]
        if self.projector is not None:
            args += ["--mmproj", str(self.projector)]
        if self.main_gpu:
            args += ["--main-gpu", str(self.main_gpu)]
        if len(self.tensor_split) > 1:
            args += ["--tensor-split", ",".join(f"{x:.4f}" for x in self.tensor_split)]
        if self.verbose:
            args.append("--verbose")
        if self.repack != "auto":
            args += ["--repack", self.repack]
        if self.kv_cache_type != "f16":
            args += ["--kv-cache-type", self.kv_cache_type]
        if self.flash_attention != "auto":
            args += ["--flash-attention", self.flash_attention]
        return args

    def env(self) -> dict[str, str]:
        """Variables to add to the runner's environment (which GPUs it sees)."""
        name = VISIBLE_DEVICES.get(self.gpu_library or "")
        if name is None:
            return {}
        if self.n_gpu_layers == 0 or not self.gpu_indices:
            return {name: "-1"}  # on the CPU: hide the GPUs so nothing lands there
        return {name: ",".join(str(i) for i in self.gpu_indices)}

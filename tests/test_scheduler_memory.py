"""The scheduler reads a load's draft model and projector and reserves their memory."""

from __future__ import annotations

from pathlib import Path

from scheduler_support import LLAMA_SHAPE, run

from ocillm.gguf import read_gguf_info
from ocillm.gpu import (
    EstimateOptions,
    FakeDiscovery,
    ModelShape,
    ProjectorShape,
    estimate,
    fake_gpu,
    place,
)
from ocillm.scheduler import LoadOptions, LoadRequest, Scheduler, StubRunnerFactory

GiB = 1 << 30
OPTS = LoadOptions(num_ctx=2048)


def test_the_draft_and_the_projector_are_in_what_ps_reports(
    tiny_gguf: Path, tiny_mmproj: Path
) -> None:
    discovery = FakeDiscovery([fake_gpu(0, 8 * GiB)])

    async def main() -> tuple[int, int]:
        s = Scheduler(discovery, StubRunnerFactory())
        plain = LoadRequest(model_path=Path("/models/a.gguf"), shape=LLAMA_SHAPE, options=OPTS)
        extras = LoadRequest(
            model_path=Path("/models/b.gguf"),
            shape=LLAMA_SHAPE,
            options=OPTS,
            draft=tiny_gguf,
            projector=tiny_mmproj,
        )
        async with s.acquire("a", plain), s.acquire("b", extras):
            sizes = {r.key: r.size_vram for r in s.ps()}
        await s.shutdown()
        return sizes["a"], sizes["b"]

    plain, extras = run(main())
    needs = estimate(
        LLAMA_SHAPE,
        EstimateOptions(num_ctx=2048),
        draft=ModelShape.from_gguf_info(read_gguf_info(tiny_gguf)),
        projector=ProjectorShape.from_gguf_info(read_gguf_info(tiny_mmproj)),
    )
    assert extras == place(needs, discovery.inventory()).size_vram
    assert extras > plain + needs.projector_bytes

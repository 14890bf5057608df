"""Whether a model can load now, beside the models already loaded: the scheduler's memory policy.

A model alone loads wherever placement puts it, a partial offload included. Beside loaded models it
must be fully on the GPUs within ``HEADROOM`` of their free memory (anywhere, when it runs on the
CPU), else the scheduler evicts an idle model and asks again. What does not fit even alone is
insufficient memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ocillm.gpu.estimate import EstimateOptions, MemoryNeeds, ModelShape, ProjectorShape, estimate
from ocillm.gpu.placement import Placement, place
from ocillm.gpu.types import Inventory

Verdict = Literal["load", "evict", "insufficient"]


@dataclass(frozen=True)
class Fit:
    """The answer for one load: where it goes and what to do about it."""

    verdict: Verdict
    placement: Placement
    needs: MemoryNeeds
    library: str | None  # the GPU runtime the runner uses; None without GPUs
    required: int  # system memory the placement needs (what InsufficientMemory reports)
    available: int  # free system memory

    @property
    def num_ctx(self) -> int:
        """Tokens per slot, capped at the model's trained context."""
        return self.needs.num_ctx


def fit(
    shape: ModelShape,
    options: EstimateOptions,
    inventory: Inventory,
    loaded: Iterable[Placement],
    *,
    num_gpu: int = -1,
    spread: bool = False,
    overhead: int = 0,
    draft: ModelShape | None = None,
    projector: ProjectorShape | None = None,
) -> Fit:
    """Place ``shape`` (with its ``draft`` and ``projector``) beside the ``loaded`` placements."""
    needs = estimate(shape, options, draft=draft, projector=projector)
    used_vram: dict[str, int] = {}
    used_system = 0
    beside = False
    for p in loaded:
        beside = True
        for gpu_id, vram in zip(p.gpu_ids, p.vram_per_gpu, strict=False):
            used_vram[gpu_id] = used_vram.get(gpu_id, 0) + vram
        used_system += p.size - p.size_vram
    placement = place(
        needs,
        inventory,
        used_vram=used_vram,
        used_system=used_system,
        num_gpu=num_gpu,
        spread=spread,
        overhead=overhead,
    )
    gpu_wanted = bool(inventory.gpus) and num_gpu != 0
    good = placement.fits and (
        not beside or not gpu_wanted or (placement.full_offload and placement.within_headroom)
    )
    verdict: Verdict
    if not good and beside:
        verdict = "evict"
    elif not placement.fits:
        verdict = "insufficient"
    else:
        verdict = "load"
    return Fit(
        verdict=verdict,
        placement=placement,
        needs=needs,
        library=placement.library or (inventory.gpus[0].library if inventory.gpus else None),
        required=placement.size - placement.size_vram,
        available=inventory.system.free,
    )

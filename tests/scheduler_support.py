"""Shapes and helpers the scheduler and placement tests share (no GPU, no model needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ocillm.gpu import ModelShape

T = TypeVar("T")
MiB = 1 << 20
GiB = 1 << 30

#: A 50 MiB toy model: 4 blocks of 10 MiB.
SMALL_SHAPE = ModelShape(
    block_count=4,
    embedding_length=256,
    head_count=4,
    head_count_kv=4,
    vocab_size=1000,
    layer_bytes={i: 10 * MiB for i in range(4)},
    output_bytes=5 * MiB,
    total_bytes=50 * MiB,
)

#: A ~1.3 GB llama-like model: 16 blocks of 64 MiB, a 128 MiB output layer; about 1.8 GiB fully on
#: a GPU with a 2048-token context.
LLAMA_SHAPE = ModelShape(
    block_count=16,
    embedding_length=2048,
    head_count=16,
    head_count_kv=4,
    vocab_size=32000,
    layer_bytes={i: 64 * MiB for i in range(16)},
    output_bytes=128 * MiB,
    total_bytes=16 * 64 * MiB + 2 * 128 * MiB,
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a scenario with a deadline, so a scheduler bug fails instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, 20))

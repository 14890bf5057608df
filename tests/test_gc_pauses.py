"""Start-up objects are frozen out of the cyclic collector; what comes later is still collected."""

from __future__ import annotations

import gc
import weakref

from ocillm.gc_pauses import freeze_startup_objects


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_frozen_objects_leave_full_passes_and_new_cycles_are_still_collected() -> None:
    try:
        kept = _Node()
        frozen = freeze_startup_objects()
        assert frozen == gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # out of the collector's sight
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle made after the freeze
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()

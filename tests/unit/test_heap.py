"""loopline_core.heap: the collector settings of long-running event processors."""

from __future__ import annotations

import gc

from loopline_core.heap import settle_heap


def test_settling_the_heap_freezes_start_up_objects_and_spaces_young_collections() -> None:
    thresholds = gc.get_threshold()
    try:
        settle_heap(12_345)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (12_345, *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)

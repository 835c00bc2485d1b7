"""Garbage-collector settings for a long-running event processor."""

from __future__ import annotations

import gc


def settle_heap(young_threshold: int = 10_000) -> None:
    """Call once start-up is done (modules, protobuf descriptors, settings, the wired service).

    Those objects live as long as the process, so the cyclic collector stops walking them
    (``gc.freeze``), and it looks at young objects every ``young_threshold`` allocations
    instead of 700. Handling one event allocates a dozen or more short-lived objects that
    reference counting frees; with the defaults a busy consumer runs a young collection every
    few records and walks a large heap, several percent of its CPU (drift detector, feedback
    collector: measured in docs/drift.md and docs/feedback.md).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)

"""Label state of one prediction: labels applied in arrival order (domain.apply_label)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from loopline.common.v1 import common_pb2
from loopline.events.v1 import predictions_pb2

from loopline_feedback_collector import domain

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def arrival(value: int, seconds: int) -> tuple[datetime, str, predictions_pb2.FeedbackReceived]:
    feedback = predictions_pb2.FeedbackReceived(prediction_id="p", label=common_pb2.Label(class_index=value))
    return T0 + timedelta(seconds=seconds), f"class_index:{value}", feedback


def apply_all(state: domain.LabelState | None, arrivals: list[tuple[datetime, str, predictions_pb2.FeedbackReceived]]
              ) -> tuple[domain.LabelState | None, list[str], list[domain.Change]]:
    outcomes, changes = [], []
    for event_time, value, feedback in arrivals:
        state, outcome = domain.apply_label(state, event_time, value, feedback, changes)
        outcomes.append(outcome)
    return state, outcomes, changes


def test_a_newer_label_then_an_older_one_the_newer_wins_and_the_older_is_counted_stale() -> None:
    state, outcomes, changes = apply_all(None, [arrival(1, 10), arrival(0, 5)])
    assert state is not None and (state.value, state.revision, state.event_time) == ("class_index:1", 0,
                                                                                    T0 + timedelta(seconds=10))
    assert outcomes == ["new", "stale"]
    assert changes == []


def test_an_older_label_then_a_newer_one_the_change_is_recorded() -> None:
    state, outcomes, changes = apply_all(None, [arrival(0, 5), arrival(1, 10)])
    assert state is not None and (state.value, state.revision) == ("class_index:1", 1)
    assert outcomes == ["new", "changed"]
    assert changes == [(1, "class_index:0", "class_index:1", T0 + timedelta(seconds=5), T0 + timedelta(seconds=10))]


def test_against_a_held_label_the_same_value_is_a_duplicate_and_a_later_time_refreshes_it() -> None:
    held = domain.LabelState(T0, "class_index:2", 3)
    state, outcomes, changes = apply_all(held, [arrival(2, 0), arrival(2, 20), arrival(0, 10)])
    assert state is not None and (state.value, state.revision, state.event_time) == ("class_index:2", 3,
                                                                                    T0 + timedelta(seconds=20))
    # the later duplicate makes the conflicting label at +10 s older than what is held: stale
    assert outcomes == ["duplicate", "duplicate", "stale"]
    assert changes == []
    assert state.feedback is not None  # to be written back (its event time moved)


def test_an_unchanged_held_label_needs_no_write() -> None:
    held = domain.LabelState(T0, "class_index:2", 3)
    state, outcomes, _ = apply_all(held, [arrival(2, 0), arrival(1, -5)])
    assert outcomes == ["duplicate", "stale"]
    assert state is held and state.feedback is None


def test_one_batch_or_one_label_at_a_time_and_any_redelivery_end_in_the_same_state() -> None:
    arrivals = [arrival(0, 5), arrival(1, 10), arrival(1, 30), arrival(2, 20), arrival(0, 40), arrival(2, 1)]
    together, outcomes, changes = apply_all(None, arrivals)
    assert together is not None and (together.value, together.revision) == ("class_index:0", 2)
    assert outcomes == ["new", "changed", "duplicate", "stale", "changed", "stale"]
    assert [change[:3] for change in changes] == [(1, "class_index:0", "class_index:1"),
                                                   (2, "class_index:1", "class_index:0")]
    # Split into batches anywhere: each batch starts from what the previous one left.
    for cut in range(1, len(arrivals)):
        first, _, first_changes = apply_all(None, arrivals[:cut])
        second, _, second_changes = apply_all(first, arrivals[cut:])
        assert second is not None and (second.value, second.revision, second.event_time) == (
            together.value, together.revision, together.event_time)
        assert first_changes + second_changes == changes
    # A redelivery of labels already applied (a crash before the offsets were committed) changes nothing.
    for replayed in itertools.permutations(arrivals[:4], 2):
        again, replay_outcomes, replay_changes = apply_all(
            domain.LabelState(together.event_time, together.value, together.revision), list(replayed))
        assert again is not None and (again.value, again.revision, again.event_time) == (
            together.value, together.revision, together.event_time)
        assert replay_changes == [] and "changed" not in replay_outcomes

"""A batch of events gives what the same events one at a time give: the detect stage
applies a routed batch per version and feature (``ModelMonitor.observe_rows``,
``Stream.offer_many``, ``Detector._learn_many``), and its statistics, decisions,
evidence, counts and checkpointed state must be those of per-event updates, to the bit."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from drift_cases import CATEGORICAL, ERRORS, NUMERIC, NUMERIC_REFERENCE, T0, VALIDATION, make

from loopline_drift_detector.domain import ModelMonitor, MonitorConfig, ReferenceProfile, synthetic
from loopline_drift_detector.domain.detector import Detector


def _chunks(n: int, seed: int) -> list[tuple[int, int]]:
    """Random cuts of range(n), from single events to long batches."""
    rng = random.Random(seed)
    cuts, at = [], 0
    while at < n:
        size = rng.choice((1, 2, 7, 50, 299, 300, 301, 777))
        cuts.append((at, min(n, at + size)))
        at += size
    return cuts


def _state(detector: Detector) -> bytes:
    return pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL)


def _stream(kind: str, seed: int) -> list[Any]:
    if kind == "numeric":
        return synthetic.mean_shift(seed, 1500, 1500, 1.0).tolist()
    if kind == "categorical":
        return synthetic.categories(seed, ("a", "b", "c"), (0.5, 0.3, 0.2), (0.2, 0.3, 0.5), 1500, 1500)
    return [bool(b) for b in synthetic.error_bits(seed, 1500, 1500, 0.2, 0.5)]


def _one_by_one(detector: Detector, values: Sequence[Any]) -> list[tuple[int, Any, bytes]]:
    fired = []
    for i, value in enumerate(values):
        detector._update_checked(value)
        if detector.drift_detected:
            fired.append((i, detector.summary(), _state(detector)))
    return fired


def _batched(detector: Detector, values: Sequence[Any], seed: int) -> list[tuple[int, Any, bytes]]:
    fired = []
    for lo, hi in _chunks(len(values), seed):
        batch, at = list(values[lo:hi]), 0
        while True:
            at = detector._learn_many(batch, at)
            if at >= len(batch):
                break
            assert detector.drift_detected
            fired.append((lo + at, detector.summary(), _state(detector)))
            at += 1
    return fired


@pytest.mark.parametrize(("kind", "name"), [("numeric", n) for n in NUMERIC if n not in ("kswin",)]
                         + [("categorical", n) for n in CATEGORICAL] + [("error", n) for n in ERRORS])
def test_a_detector_learns_a_batch_as_it_learns_its_values_one_by_one(kind: str, name: str) -> None:
    for seed in range(3):
        values = _stream(kind, seed)
        alone, batched = make(kind, name), make(kind, name)
        expected = _one_by_one(alone, values)
        got = _batched(batched, values, seed)
        assert [(i, s) for i, s, _ in got] == [(i, s) for i, s, _ in expected]
        assert [state for *_, state in got] == [state for *_, state in expected]
        assert _state(batched) == _state(alone) and batched.n_samples == alone.n_samples == len(values)
        assert batched.drift_detected == alone.drift_detected
    assert expected, f"{name} never fired: the test shows nothing"


def test_the_cusum_scores_of_a_batch_are_its_values_scores_to_the_bit() -> None:
    detector = make("numeric", "cusum")
    xs, _, _, _ = NUMERIC_REFERENCE._score_knots
    probes = [xs[0] - 1.0, xs[0], xs[-1], xs[-1] + 1.0, xs[5], (xs[5] + xs[6]) / 2, 0.0, -0.0, 1e-300]
    probes += synthetic.stationary(3, 2000).tolist()
    assert detector._scores(probes) == [NUMERIC_REFERENCE.normal_score(x) for x in probes]


FOUR = ReferenceProfile({f"f{j}": NUMERIC_REFERENCE for j in range(4)}, NUMERIC_REFERENCE.count)


def _rows(seed: int, n: int = 4000) -> np.ndarray:
    """Float32 rows as the predictions carry them (columns f3, extra, f1, f0): f1 shifts by
    1σ half-way, f3 doubles its spread, with NaN, infinities and values far out of the
    reference's range."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, 1.0, (n, 4))
    rows[n // 2:, 2] += 1.0
    rows[n // 2:, 0] *= 2.0
    for bad in (math.nan, math.inf, -math.inf, 1e30):
        rows[rng.integers(0, n, 15), rng.integers(0, 4, 15)] = bad
    return rows.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("settings", [
    {},
    {"warmup": 120, "min_samples": 200, "realert_after": 150, "evidence_traces": 3},
    {"numeric": ["cusum", "ks", "psi"], "min_votes": 2, "vote_window": 400, "realert_after": 100},
    {"evidence_traces": 0, "concept": ["ddm", "hddm_w"], "performance": ["error_cusum", "accuracy_drop"]},
])
def test_a_monitor_fed_batches_decides_as_one_fed_event_by_event(settings: dict[str, Any]) -> None:
    config = MonitorConfig.from_mapping(settings)
    signature = ("f3", "extra", "f1", "f0")  # another order, a column not profiled, f2 absent
    for seed in range(2):
        rows = _rows(seed)
        errors = [bool(e) for e in synthetic.error_bits(seed, 2000, 2000, 0.2, 0.5)]
        ats = [T0.timestamp() + i / 10 for i in range(len(rows))]
        traces = [f"t{i}" if i % 7 else "" for i in range(len(rows))]  # some events carry no trace
        one, many = (ModelMonitor("m", 1, FOUR, config=config, validation=VALIDATION) for _ in range(2))
        columns = one.columns(signature)
        expected = []
        for i, row in enumerate(rows.tolist()):
            expected += one.observe_row(row, columns, at=ats[i], trace_id=traces[i])
            expected += one.observe_outcome(errors[i], at=ats[i], trace_id=traces[i])
        got = []
        for lo, hi in _chunks(len(rows), seed):
            by_row = many.observe_rows(rows[lo:hi], columns, ats[lo:hi], traces[lo:hi])
            by_outcome = many.observe_outcomes(errors[lo:hi], ats[lo:hi], traces[lo:hi])
            # Event by event, a row's decisions come before its outcome's.
            merged = sorted([(r, 0, d) for r, d in by_row] + [(r, 1, d) for r, d in by_outcome],
                            key=lambda f: (f[0], f[1]))
            got += [d for *_, d in merged]
        watched = {"f1", "f3"} | ({"concept", "performance"} if config.min_votes == 1 else set())
        assert {d.feature or d.kind.value for d in expected} == watched  # the test shows something
        assert repr(got) == repr(expected)  # repr: summaries may hold NaN, which equals nothing
        assert many.value_counts() == one.value_counts()
        assert pickle.dumps(many, protocol=pickle.HIGHEST_PROTOCOL) == pickle.dumps(one, protocol=pickle.HIGHEST_PROTOCOL)


def test_our_hddm_a_runs_as_rivers_own() -> None:
    from river import drift

    from loopline_drift_detector.domain.river_concept import _HDDM_A

    for seed, two_sided in ((0, False), (1, True)):
        ours, theirs = _HDDM_A(1e-4, 5e-3, two_sided), drift.binary.HDDM_A(1e-4, 5e-3, two_sided)
        bits = synthetic.error_bits(seed, 3000, 3000, 0.2, 0.5).tolist()
        bits += synthetic.error_bits(seed + 7, 0, 3000, 0.5, 0.1).tolist()
        seen = []
        for bit in bits:
            ours.update(bit)
            theirs.update(bit)
            assert (ours.drift_detected, ours.warning_detected) == (theirs.drift_detected, theirs.warning_detected)
            seen.append(ours.drift_detected)
            assert [vars(getattr(ours, m)) for m in ("_z", "_x_min", "_x_max")] == \
                [vars(getattr(theirs, m)) for m in ("_z", "_x_min", "_x_max")]
        assert sum(seen) >= 1

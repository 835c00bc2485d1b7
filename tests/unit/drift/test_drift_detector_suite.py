"""One suite, run against every detector: fires after a change, stays quiet on
stationary data, ignores what it must not see, checkpoints exactly, explains itself.

Streams are seeded (numpy's RandomState, stable across releases), so the indices
below are exact. The change is at index 1000: a 1σ mean shift (numeric), shares
0.5/0.3/0.2 → 0.2/0.3/0.5 (categorical), error rate 0.2 → 0.5 (errors).
"""

from __future__ import annotations

import inspect
import math

import pytest
from drift_cases import CATEGORICAL, ERRORS, NUMERIC, change_stream, firings, make

from loopline_drift_detector.domain import checkpoint
from loopline_core.profiles.reference import NumericProfile

ALL = [("numeric", n) for n in NUMERIC] + [("categorical", n) for n in CATEGORICAL] + [("error", n) for n in ERRORS]

#: The first firing at or after the change, for seed 0.
FIRST_AFTER_CHANGE = {
    ("numeric", "adwin"): 1055, ("numeric", "chi2"): 1124, ("numeric", "cusum"): 1024,
    ("numeric", "js"): 1149, ("numeric", "ks"): 1099, ("numeric", "kswin"): 1022,
    ("numeric", "page_hinkley"): 1013, ("numeric", "psi"): 1224,
    ("categorical", "chi2"): 1174, ("categorical", "js"): 1199, ("categorical", "psi"): 1324,
    ("error", "adwin"): 1055, ("error", "ddm"): 1433, ("error", "eddm"): 1014, ("error", "hddm_a"): 1017,
    ("error", "hddm_w"): 1017, ("error", "accuracy_drop"): 1289, ("error", "error_cusum"): 1037,
}
#: Seeded stationary samples (seed 1) with no firing. river's defaults for KSWIN, EDDM
#: and PageHinkley are noisy by design; docs/drift.md has their false-alarm rates.
QUIET_FOR = {("numeric", "kswin"): 900, ("numeric", "page_hinkley"): 2000, ("error", "eddm"): 100,
             ("error", "hddm_w"): 8000}
#: Detectors of our own, whose statistic is compared with the threshold as reported.
OWN = {"cusum", "ks", "psi", "js", "chi2", "error_cusum", "accuracy_drop"}


def test_every_detector_of_the_catalogue_is_in_the_suite() -> None:
    assert set(FIRST_AFTER_CHANGE) == set(ALL)


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_fires_after_the_change_at_the_known_index(kind: str, name: str) -> None:
    detector = make(kind, name)
    after = [i for i in firings(detector, change_stream(kind, n_after=500)) if i >= 1000]
    assert after[:1] == [FIRST_AFTER_CHANGE[kind, name]]


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_quiet_on_stationary_data(kind: str, name: str) -> None:
    quiet_for = QUIET_FOR.get((kind, name), 10_000)
    assert firings(make(kind, name), change_stream(kind, seed=1, n_before=quiet_for, n_after=0)) == []


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_rejected_values_are_counted_and_change_nothing(kind: str, name: str) -> None:
    stream = change_stream(kind, n_before=150 if name == "kswin" else 900, n_after=600)
    junk = {"numeric": [None, math.nan, "?", math.inf, -math.inf, True],
            "categorical": [None, math.nan, "", [1], 2.5],
            "error": [None, math.nan, "?", [1], 2.5]}[kind]
    clean, dirty = make(kind, name), make(kind, name)
    clean_fired, dirty_fired = [], []
    for i, x in enumerate(stream):
        clean.update(x)
        clean_fired.append(clean.drift_detected)
        dirty.update(junk[i % len(junk)])
        assert not dirty.drift_detected
        dirty.update(x)
        dirty_fired.append(dirty.drift_detected)
    assert dirty_fired == clean_fired and any(clean_fired)
    assert vars(dirty.summary()) == {**vars(clean.summary()), "counts": dirty.counts.as_dict()}
    assert dirty.counts.valid == len(stream) and dirty.counts.rejected == len(stream)
    assert dirty.n_samples == clean.n_samples == len(stream)


def test_out_of_range_values_never_reach_a_detector() -> None:
    reference = NumericProfile.from_values([0.0, 1.0, 2.0, 3.0], valid_min=0.0, valid_max=3.0)
    detector = make("numeric", "cusum").__class__(reference)
    for x in (-1.0, 3.5, 1e300):
        detector.update(x)
    assert detector.n_samples == 0 and detector.counts.out_of_range == 3


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_a_restored_checkpoint_continues_exactly(kind: str, name: str) -> None:
    n_before = 300 if name == "kswin" else 1000
    stream = change_stream(kind, n_before=n_before, n_after=600)
    split = n_before + 5  # in the middle of gathering evidence
    uninterrupted = firings(make(kind, name), stream)
    first = make(kind, name)
    before = firings(first, stream[:split])
    restored = checkpoint.loads(checkpoint.dumps(first, key=b"k"), key=b"k")
    after = [split + i for i in firings(restored, stream[split:])]
    assert before + after == uninterrupted and after


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_the_summary_explains_a_firing(kind: str, name: str) -> None:
    detector = make(kind, name)
    for x in change_stream(kind, n_before=150 if name == "kswin" else 1000, n_after=1000):
        detector.update(x)
        if detector.drift_detected:
            break
    s = detector.summary()
    assert detector.drift_detected and s.detector == name == detector.name
    assert 0 < s.window <= s.sample_count == detector.n_samples
    assert s.change_index == s.sample_count - s.window
    assert s.counts["valid"] == s.sample_count and s.current and all(map(math.isfinite, [s.statistic, s.threshold]))
    if name in OWN:
        assert s.statistic > s.threshold


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_parameters_are_public_and_state_is_private(kind: str, name: str) -> None:
    detector = make(kind, name)
    public = {k for k in vars(detector) if not k.startswith("_")}
    accepted = set(inspect.signature(type(detector)).parameters)
    assert public <= accepted, public - accepted
    assert repr(detector).startswith(type(detector).__name__ + "(")

"""Which bit river's error-stream detectors read as an error, and what ours are fed.

river 0.23's docstrings and source say 1 is an error for DDM, EDDM, HDDM_A and
HDDM_W. These tests hold river to it, so an upgrade that flips a detector fails
here instead of silently inverting concept-drift alerts.
"""

from __future__ import annotations

import pytest
from drift_cases import ERRORS, firings, make
from river import drift

from loopline_drift_detector.domain import synthetic
from loopline_drift_detector.domain.river_concept import _RiverErrors

ONE_SIDED = {"ddm": drift.binary.DDM, "eddm": drift.binary.EDDM,
             "hddm_a": drift.binary.HDDM_A, "hddm_w": drift.binary.HDDM_W}


def _bits(errors: list[bool], error_bit: int) -> list[int]:
    return [error_bit if e else 1 - error_bit for e in errors]


def _fired_after(detector: object, stream: list[int], change: int = 1000) -> bool:
    for i, x in enumerate(stream):
        detector.update(x)  # type: ignore[attr-defined]
        if detector.drift_detected and i >= change:  # type: ignore[attr-defined]
            return True
    return False


@pytest.mark.parametrize("name", sorted(ONE_SIDED))
def test_river_reads_one_as_an_error(name: str) -> None:
    # Accuracy falls from 0.95 to 0.6. Fed 1 for an error, the rise is found within
    # 500 outcomes; fed 1 for a correct prediction, the same stream reads as "fewer
    # ones" and is not flagged.
    errors = synthetic.error_bits(seed=4, n_before=1000, n_after=500, p_before=0.05, p_after=0.4).tolist()
    assert _fired_after(ONE_SIDED[name](), _bits(errors, error_bit=1))
    assert not _fired_after(ONE_SIDED[name](), _bits(errors, error_bit=0))


@pytest.mark.parametrize("name", sorted(ONE_SIDED) + ["adwin"])
def test_our_wrappers_give_river_its_error_bit(name: str) -> None:
    detector = make("error", name)
    assert isinstance(detector, _RiverErrors) and detector.ERROR_BIT == 1


def test_river_adwin_is_two_sided() -> None:
    # Why the ADWIN wrapper checks the direction: raw ADWIN also flags a model getting better.
    errors = synthetic.error_bits(seed=5, n_before=1000, n_after=1000, p_before=0.5, p_after=0.1)
    assert _fired_after(drift.ADWIN(), errors.astype(int).tolist())


@pytest.mark.parametrize("name", ERRORS)
def test_a_model_getting_better_is_never_drift(name: str) -> None:
    def after_1000(errors: list[bool]) -> list[int]:
        return [i for i in firings(make("error", name), errors) if i >= 1000]

    better = [synthetic.error_bits(seed, 1000, 2000, p_before=0.5, p_after=0.1).tolist() for seed in range(5, 9)]
    if name == "eddm":  # EDDM's defaults raise false alarms anyway: no more than when nothing changed
        same = [synthetic.error_bits(seed, 3000, 0, p_before=0.1).tolist() for seed in range(5, 9)]
        assert sum(map(len, map(after_1000, better))) <= sum(map(len, map(after_1000, same)))
    else:
        assert list(map(after_1000, better)) == [[]] * 4


@pytest.mark.parametrize("name", ERRORS)
def test_a_model_getting_worse_is_drift(name: str) -> None:
    errors = synthetic.error_bits(seed=5, n_before=1000, n_after=2000, p_before=0.1, p_after=0.5).tolist()
    assert [i for i in firings(make("error", name), errors) if i >= 1000]


@pytest.mark.parametrize("name", ERRORS)
def test_callers_pass_booleans_and_numbers_alike(name: str) -> None:
    errors = synthetic.error_bits(seed=6, n_before=1000, n_after=500).tolist()
    as_bools, as_ints = make("error", name), make("error", name)
    assert firings(as_bools, errors) == firings(as_ints, [int(e) for e in errors])


def test_a_perfect_holdout_does_not_make_the_error_cusum_alarm_on_a_few_live_errors() -> None:
    """A version that scored 1.000 on its holdout, served at a 4% live error rate: no alarm."""
    import random

    from loopline_drift_detector.domain.performance import ErrorRateCUSUM

    alarms = 0
    for seed in range(50):
        rng = random.Random(seed)
        detector = ErrorRateCUSUM(validation_error=0.0)
        alarms += any(detector._learn(rng.random() < 0.04) for _ in range(500))
    assert alarms <= 2

"""Snapshots, content hashes and the seeded split."""

from __future__ import annotations

import numpy as np
import pytest
from loopline_core.errors import InvalidArgument
from trainer_fakes import records

from loopline_trainer.domain.dataset import Snapshot, split
from loopline_trainer.domain.rows import snapshot_from_records
from loopline_trainer.domain.runs import run_id_for


def snapshot(n: int = 100, seed: int = 1) -> Snapshot:
    return snapshot_from_records(records(n, concept=0, seed=seed), query="q")


def test_the_hash_depends_on_rows_labels_and_names_only() -> None:
    a, b = snapshot(), snapshot()
    assert a.content_sha256() == b.content_sha256()
    flipped = Snapshot(a.feature_names, a.features, 1 - a.labels)
    renamed = Snapshot(("w", "x", "y", "z"), a.features, a.labels)
    assert len({a.content_sha256(), flipped.content_sha256(), renamed.content_sha256()}) == 3


def test_the_split_is_a_partition_fixed_by_the_seed() -> None:
    data = snapshot(200)
    one = split(data, seed=3, validation_share=0.15, holdout_share=0.15)
    two = split(data, seed=3, validation_share=0.15, holdout_share=0.15)
    other = split(data, seed=4, validation_share=0.15, holdout_share=0.15)
    assert (len(one.train), len(one.validation), len(one.holdout)) == (140, 30, 30)
    assert one.holdout.content_sha256() == two.holdout.content_sha256() != other.holdout.content_sha256()
    rows = np.concatenate([one.train.features, one.validation.features, one.holdout.features])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, data.features.tolist()))


def test_too_few_rows_to_split_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="too few"):
        split(snapshot(3), seed=1, validation_share=0.15, holdout_share=0.15)


def test_records_with_other_feature_names_are_refused_by_number() -> None:
    rows = records(3, concept=0, seed=1)
    rows[2]["features"] = {"a": 1.0}
    with pytest.raises(InvalidArgument, match="record 3: features"):
        snapshot_from_records(rows, query="q")


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="finite"):
        Snapshot(("a",), np.array([[np.nan]], np.float32), np.array([0.0]))


def test_run_ids_derive_from_model_and_request() -> None:
    assert run_id_for("m", "r") == run_id_for("m", "r") != run_id_for("n", "r")

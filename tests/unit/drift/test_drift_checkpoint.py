"""Checkpoints are only read back when this service wrote them, with these libraries."""

from __future__ import annotations

import pytest

from loopline_drift_detector.domain import checkpoint
from loopline_drift_detector.domain.checkpoint import CheckpointRejected

KEY = b"0123456789abcdef0123456789abcdef"


def test_a_damaged_checkpoint_is_refused_before_unpickling() -> None:
    data = bytearray(checkpoint.dumps({"n": 1}, key=KEY))
    data[-3] ^= 0xFF
    with pytest.raises(CheckpointRejected, match="signature"):
        checkpoint.loads(bytes(data), key=KEY)


def test_something_else_is_refused() -> None:
    with pytest.raises(CheckpointRejected, match="not a drift-detector checkpoint"):
        checkpoint.loads(b"\x80\x04K\x01.", key=KEY)


def test_a_checkpoint_of_another_river_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = checkpoint._versions()
    monkeypatch.setattr(checkpoint, "_versions", lambda: {**real, "river": "0.1.0"})
    data = checkpoint.dumps({"n": 1}, key=KEY)
    monkeypatch.setattr(checkpoint, "_versions", lambda: real)
    with pytest.raises(CheckpointRejected, match="0.1.0"):
        checkpoint.loads(data, key=KEY)


def test_a_key_is_required() -> None:
    with pytest.raises(ValueError):
        checkpoint.dumps({}, key=b"")

"""Prediction ids: valid random UUIDs, unique, and never shared with a forked child."""

from __future__ import annotations

import os
import uuid

from loopline_serving_gateway.domain.ids import prediction_id


def test_ids_are_version_4_rfc_4122_uuids_in_canonical_text() -> None:
    for _ in range(1000):
        text = prediction_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat_and_every_random_bit_varies() -> None:
    ids = [uuid.UUID(prediction_id()).int for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    ones = zeros = 0
    for value in ids[:2000]:
        ones |= value
        zeros |= ~value
    fixed = (0xF000 << 64) | (0xC000 << 48)  # version and variant bits
    assert (ones & zeros) & ((1 << 128) - 1) == ((1 << 128) - 1) & ~fixed


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, ",".join(prediction_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    parent = [prediction_id() for _ in range(5)]
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    assert len(child) == 5 and not set(child) & set(parent)

"""Prediction ids: random (version 4) UUIDs in their text form, without a system call each.

``uuid.uuid4()`` reads 16 bytes from the kernel per id (os.urandom), about 8 µs here on
every served request. Ids only need to be unique, not secret, so they come from a
Mersenne Twister seeded with 256 bits from the kernel: 122 random bits per id as
uuid4 has. A forked child is reseeded at once, so parent and child never share a
stream (the gateway's workers are spawned, but a fork must stay safe too).
"""

from __future__ import annotations

import os
import random

_random = random.Random(os.urandom(32))
_VERSION_AND_VARIANT_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4_RFC_4122 = (0x4000 << 64) | (0x8000 << 48)


def _reseed() -> None:
    _random.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def prediction_id() -> str:
    """A new random UUID (version 4, RFC 4122 variant), e.g. ``'b12b1f12-4889-49c4-8358-54dce0b71bd5'``."""
    h = "%032x" % (_random.getrandbits(128) & _VERSION_AND_VARIANT_MASK | _VERSION_4_RFC_4122)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

"""Checkpoints of detector state: pickled, signed, and only ever read back by us.

river's detectors hold their state in private attributes (ADWIN in a Cython
object), so the state is pickled whole, inside our own checkpoint store
(``detector_checkpoints``). Pickle runs code when loaded, so every checkpoint
carries an HMAC-SHA256 under a key the service alone holds, checked before
unpickling; and pickled river internals are only trusted by the river version that
wrote them: another version refuses the checkpoint, and the caller starts afresh.

>>> state = {"n": 3}
>>> loads(dumps(state, key=b"k" * 32), key=b"k" * 32)
{'n': 3}
>>> try:
...     loads(dumps(state, key=b"k" * 32), key=b"x" * 32)
... except CheckpointRejected as e:
...     print(e)
checkpoint signature does not match
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from typing import Any

import numpy as np
import river
from loopline_core.errors import FailedPrecondition

MAGIC = b"LLDC"
#: 2: streams keep their times as POSIX seconds.
FORMAT = 2


class CheckpointRejected(FailedPrecondition):
    """A checkpoint that is not ours, damaged, or written by other library versions."""


def _versions() -> dict[str, Any]:
    return {"format": FORMAT, "river": river.__version__, "numpy": np.__version__}


def dumps(state: Any, *, key: bytes) -> bytes:
    if not key:
        raise ValueError("a checkpoint key is required")
    header = json.dumps(_versions(), sort_keys=True).encode()
    payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    mac = hmac.new(key, header + payload, hashlib.sha256).digest()
    return MAGIC + len(header).to_bytes(4, "big") + header + mac + payload


def loads(data: bytes, *, key: bytes) -> Any:
    if not data.startswith(MAGIC) or len(data) < 8:
        raise CheckpointRejected("not a drift-detector checkpoint")
    size = int.from_bytes(data[4:8], "big")
    header, mac, payload = data[8:8 + size], data[8 + size:40 + size], data[40 + size:]
    expected = hmac.new(key, header + payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise CheckpointRejected("checkpoint signature does not match")
    written = json.loads(header)
    if written != _versions():
        raise CheckpointRejected(f"checkpoint written by {written}, this process runs {_versions()}")
    return pickle.loads(payload)  # noqa: S301 - signed by this service, checked above

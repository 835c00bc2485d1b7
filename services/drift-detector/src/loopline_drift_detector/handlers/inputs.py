"""Reading a prediction's input row: the ``features`` FP32 [1, n] tensor.

>>> from loopline.common.v1 import common_pb2 as cpb
>>> row = cpb.Tensor(name="features", datatype="FP32", shape=[1, 2], fp_contents=[0.5, 1.0])
>>> features_row([row])
[0.5, 1.0]
>>> features_row([cpb.Tensor(name="features", datatype="FP32", shape=[2, 1], fp_contents=[0.5, 1.0])])
Traceback (most recent call last):
...
loopline_core.errors.MalformedEvent: inputs: features must have shape [1, n], got [2, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopline_core.errors import MalformedEvent

FEATURES = "features"


def _features(inputs: Sequence[Any]) -> Any:
    """The ``features`` tensor, checked against the schema: FP32, shape [1, n], n values."""
    for tensor in inputs:
        if tensor.name == FEATURES:
            break
    else:
        raise MalformedEvent(f"no {FEATURES!r} input tensor among {[t.name for t in inputs]}", field="inputs")
    if tensor.datatype != "FP32":
        raise MalformedEvent(f"{FEATURES} must be FP32, got {tensor.datatype!r}", field="inputs")
    shape = tensor.shape
    if len(shape) != 2 or shape[0] != 1:
        raise MalformedEvent(f"{FEATURES} must have shape [1, n], got {list(shape)}", field="inputs")
    if len(tensor.fp_contents) != shape[1]:
        raise MalformedEvent(f"{FEATURES} has shape {list(shape)} but {len(tensor.fp_contents)} values",
                             field="inputs")
    return tensor


def check_features(inputs: Sequence[Any]) -> None:
    """``features_row`` without the row: the route stage only checks."""
    _features(inputs)


def features_row(inputs: Sequence[Any]) -> list[float]:
    """The one row of a logged prediction; a record that breaks the schema is malformed."""
    return list(_features(inputs).fp_contents)

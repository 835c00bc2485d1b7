"""V2 tensors (raw bytes or typed contents) to numpy and to loopline.common.v1.Tensor;
V2 parameters (InferParameter maps) to and from plain values."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from loopline_core.errors import InvalidArgument

NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "INT8": np.int8, "UINT16": np.uint16, "INT16": np.int16,
         "FP16": np.float16, "UINT32": np.uint32, "INT32": np.int32, "FP32": np.float32, "UINT64": np.uint64,
         "INT64": np.int64, "FP64": np.float64}

CONTENTS = {"BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
             "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
             "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
             "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def plain_signature(request: Any) -> tuple[object, ...] | None:
    """What a plain inference request (raw tensors only, no parameters anywhere, no outputs named)
    is made of besides its values: model, version, and each tensor's name, datatype, shape and
    byte length; None for any other request. What is derived from a request (its validation
    verdict, Triton's JSON header) depends on nothing else, so it can be remembered by this key."""
    raw = request.raw_input_contents
    inputs = request.inputs
    if not raw or request.parameters or request.outputs or len(raw) != len(inputs):
        return None
    key: tuple[object, ...] = (request.model_name, request.model_version)
    for index, tensor in enumerate(inputs):
        if tensor.parameters:
            return None
        key += (tensor.name, tensor.datatype, tuple(tensor.shape), len(raw[index]))
    return key


def decode_bytes(raw: bytes) -> list[bytes]:
    """Triton's BYTES layout: each element is a 4-byte little-endian length, then the bytes."""
    items, at = [], 0
    while at + 4 <= len(raw):
        (size,) = struct.unpack_from("<I", raw, at)
        items.append(raw[at + 4:at + 4 + size])
        at += 4 + size
    return items


def encode_bytes(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def to_array(datatype: str, shape: list[int], raw: bytes | None, contents: object | None = None) -> np.ndarray:
    if datatype == "BYTES":
        items = decode_bytes(raw) if raw is not None else list(contents.bytes_contents)  # type: ignore[union-attr]
        return np.array(items, dtype=object).reshape(shape)
    if raw is not None:
        return np.frombuffer(raw, dtype=NUMPY[datatype]).reshape(shape)
    return np.asarray(getattr(contents, CONTENTS[datatype]), dtype=NUMPY[datatype]).reshape(shape)


def bf16_as_fp32(raw: bytes) -> np.ndarray:
    """BF16 is the top half of an FP32: widen it bit for bit."""
    return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def flat_values(datatype: str, raw: bytes | None, contents: object | None = None) -> tuple[str, list[object]]:
    """The common.v1.Tensor contents field for a datatype and the tensor's values, flat (row-major)."""
    if datatype == "BYTES":
        items = decode_bytes(raw) if raw is not None else list(contents.bytes_contents)  # type: ignore[union-attr]
        return "bytes_contents", items  # type: ignore[return-value]
    if raw is not None:
        array = bf16_as_fp32(raw) if datatype == "BF16" else np.frombuffer(raw, dtype=NUMPY[datatype])
    else:
        array = np.asarray(getattr(contents, CONTENTS[datatype]), dtype=NUMPY[datatype])
    if datatype == "BOOL":
        return "bool_contents", array.tolist()
    if datatype.startswith(("FP", "BF")):
        return "fp_contents", array.astype(np.float64).tolist()
    return "int_contents", array.astype(np.int64).tolist()


def set_param(target: Any, key: str, value: object) -> None:
    """``target[key] = value`` on an InferParameter map, choosing the field by type."""
    if isinstance(value, bool):
        target[key].bool_param = value
    elif isinstance(value, int):
        target[key].int64_param = value
    elif isinstance(value, float):
        target[key].double_param = value
    elif isinstance(value, str):
        target[key].string_param = value
    else:
        raise InvalidArgument(f"parameter {key} must be a bool, number or string", field="parameters")


def params_of(parameters: Any) -> dict[str, object]:
    """An InferParameter map as plain values (None for an unset parameter)."""
    values: dict[str, object] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, choice) if choice else None
    return values

"""Checks an inference request before it reaches Triton: names, sizes, shapes, bytes.

Every refusal names the tensor and the problem. Shared-memory parameters are
refused outright: the gateway never lets a client point Triton at memory regions.
"""

from __future__ import annotations

import math

from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import InvalidArgument
from loopline_core.triton.repository import check_name

from loopline_serving_gateway.handlers.tensors import CONTENTS as _CONTENTS
from loopline_serving_gateway.handlers.tensors import plain_signature
from loopline_serving_gateway.settings import Limits

ITEM_BYTES = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "BF16": 2,
              "UINT32": 4, "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8, "BYTES": 0}


def _refuse_shared_memory(parameters: object, where: str) -> None:
    for key in parameters:  # type: ignore[attr-defined]
        if key.startswith("shared_memory"):
            raise InvalidArgument(f"{key} is not accepted by the gateway (shared memory is refused)", field=where)


def elements_of(shape: list[int] | tuple[int, ...], where: str) -> int:
    if not shape:
        raise InvalidArgument("shape is empty; the first dimension is the batch", field=where)
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"shape {list(shape)} has a negative dimension", field=where)
    return math.prod(shape)


#: Signatures of plain requests already accepted (``tensors.plain_signature``) under given limits,
#: with their batch size and tensor bytes: the verdict depends on nothing else, and a model's
#: requests repeat a few signatures.
_ACCEPTED: dict[tuple[object, ...], tuple[int, int]] = {}
_REMEMBERED = 512


def validate(request: pb.ModelInferRequest, limits: Limits) -> int:
    """Raise InvalidArgument on anything wrong; return the batch size (rows)."""
    return checked(request, limits)[0]


def checked(request: pb.ModelInferRequest, limits: Limits) -> tuple[int, int]:
    """``validate``, returning the batch size and the bytes of the request's tensor data (raw
    bytes as given; typed values at their datatype's size).

    A plain request (raw tensors, no parameters, no outputs named) whose signature was accepted
    before under the same limits is accepted again without the checks; refusals are never kept."""
    signature = plain_signature(request)
    if signature is None:
        return _validate(request, limits)
    key = (limits.max_elements, limits.max_tensors, *signature)
    verdict = _ACCEPTED.get(key)
    if verdict is None:
        verdict = _validate(request, limits)
        if len(_ACCEPTED) >= _REMEMBERED:
            _ACCEPTED.clear()
        _ACCEPTED[key] = verdict
    return verdict


def _validate(request: pb.ModelInferRequest, limits: Limits) -> tuple[int, int]:
    check_name(request.model_name, "model_name")
    if request.model_version and not request.model_version.isdigit():
        raise InvalidArgument(f"{request.model_version!r} is not a version number", field="model_version")
    if not request.inputs:
        raise InvalidArgument("the request has no inputs", field="inputs")
    if len(request.inputs) > limits.max_tensors:
        raise InvalidArgument(f"{len(request.inputs)} inputs exceed the limit of {limits.max_tensors}", field="inputs")
    _refuse_shared_memory(request.parameters, "parameters")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs",
                              field="raw_input_contents")
    total, rows, data_bytes = 0, -1, 0
    for index, tensor in enumerate(request.inputs):
        where = f"inputs[{tensor.name or index}]"
        check_name(tensor.name, where)
        _refuse_shared_memory(tensor.parameters, where)
        size = ITEM_BYTES.get(tensor.datatype)
        if size is None:
            raise InvalidArgument(f"unknown datatype {tensor.datatype!r}", field=where)
        count = elements_of(tensor.shape, where)
        total += count
        if total > limits.max_elements:
            raise InvalidArgument(f"the request has more than {limits.max_elements} elements", field=where)
        if rows not in (-1, tensor.shape[0]):
            raise InvalidArgument(f"batch dimension {tensor.shape[0]} differs from the other inputs' {rows}",
                                  field=where)
        rows = tensor.shape[0]
        if raw:
            given_bytes = len(raw[index])
            if size and given_bytes != count * size:
                raise InvalidArgument(f"{given_bytes} bytes given, shape {list(tensor.shape)} of "
                                      f"{tensor.datatype} needs {count * size}", field=where)
            data_bytes += given_bytes
        else:
            field = _CONTENTS.get(tensor.datatype)
            if field is None:
                raise InvalidArgument(f"{tensor.datatype} data must come as raw_input_contents", field=where)
            given = len(getattr(tensor.contents, field))
            if given != count:
                raise InvalidArgument(f"{given} values given, shape {list(tensor.shape)} needs {count}", field=where)
            data_bytes += count * (size or 8)
    for output in request.outputs:
        check_name(output.name, "outputs")
        _refuse_shared_memory(output.parameters, f"outputs[{output.name}]")
    return rows, data_bytes


def answer_bytes(response: pb.ModelInferResponse) -> int:
    """Bytes of an answer's tensor data, for the prediction log's byte bound: each output's elements
    times its datatype's size, read from the shapes (a BYTES output: its raw length), so a large
    answer is not copied to be measured (reading a raw output out of the message copies it, and
    ``ByteSize()`` serializes the whole message)."""
    total = 0
    raw = None
    for index, output in enumerate(response.outputs):
        size = ITEM_BYTES.get(output.datatype)
        if size:
            total += math.prod(output.shape, start=size)
            continue
        if raw is None:
            raw = response.raw_output_contents
        if index < len(raw):
            total += len(raw[index])
        else:  # typed BYTES contents
            total += sum(map(len, output.contents.bytes_contents))
    return total

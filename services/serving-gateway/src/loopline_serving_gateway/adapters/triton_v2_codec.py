"""V2 inference over HTTP with the binary tensor extension: a ModelInferRequest as the
request path, a JSON header and the binary tensors, and an answer back as a
ModelInferResponse (every output asked for as binary, so each maps onto
``raw_output_contents``; a JSON output is converted to raw bytes). Repeated request
and answer headers are kept (a model's requests repeat a few signatures).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from loopline_serving_gateway.handlers.tensors import (
    CONTENTS, NUMPY, encode_bytes, params_of, plain_signature, set_param,
)


def _raw_of_contents(tensor: pb.ModelInferRequest.InferInputTensor) -> bytes:
    if tensor.datatype == "BYTES":
        return encode_bytes(list(tensor.contents.bytes_contents))
    values = getattr(tensor.contents, CONTENTS[tensor.datatype])
    return np.asarray(values, dtype=NUMPY[tensor.datatype]).tobytes()


#: Path and JSON header of plain requests without an id, by ``tensors.plain_signature``: the
#: requests of one model repeat a few signatures.
_PLAIN: dict[tuple[object, ...], tuple[str, bytes]] = {}
#: Parsed answer headers (a response to copy, the binary size of each output), by header bytes.
_ANSWERS: dict[bytes, tuple[pb.ModelInferResponse, list[int]]] = {}
_CACHED = 256


def encode_request(request: pb.ModelInferRequest) -> tuple[str, bytes, list[bytes]]:
    """The request path, the JSON header and the binary tensors (validated requests only)."""
    key = None if request.id else plain_signature(request)
    if key is None:
        return _encode_request(request)
    plain = _PLAIN.get(key)
    if plain is None:
        if len(_PLAIN) >= _CACHED:
            _PLAIN.clear()
        path, header, tail = _encode_request(request)
        _PLAIN[key] = (path, header)
        return path, header, tail
    return plain[0], plain[1], list(request.raw_input_contents)


def _encode_request(request: pb.ModelInferRequest) -> tuple[str, bytes, list[bytes]]:
    raw = request.raw_input_contents
    inputs, tail = [], []
    for index, tensor in enumerate(request.inputs):
        data = raw[index] if raw else _raw_of_contents(tensor)
        parameters = params_of(tensor.parameters) if tensor.parameters else {}
        parameters["binary_data_size"] = len(data)  # ours, whatever the client put there
        inputs.append({"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape),
                       "parameters": parameters})
        tail.append(data)
    header: dict[str, object] = {"inputs": inputs}
    if request.id:
        header["id"] = request.id
    parameters = params_of(request.parameters) if request.parameters else {}
    parameters["binary_data_output"] = True
    header["parameters"] = parameters
    if request.outputs:
        header["outputs"] = [{"name": o.name, "parameters": {**params_of(o.parameters), "binary_data": True}}
                             for o in request.outputs]  # binary_data last: every output comes back raw
    version = request.model_version
    path = (f"/v2/models/{request.model_name}/versions/{version}/infer" if version
            else f"/v2/models/{request.model_name}/infer")
    return path, json.dumps(header, separators=(",", ":")).encode(), tail


def _output_bytes(spec: dict[str, Any]) -> bytes:
    datatype = spec["datatype"]
    if datatype == "BYTES":
        return encode_bytes([i.encode() if isinstance(i, str) else bytes(i)
                             for i in np.asarray(spec["data"], dtype=object).reshape(-1).tolist()])
    return np.asarray(spec["data"], dtype=NUMPY[datatype]).tobytes()


def decode_response(body: bytes, header_length: int | None) -> pb.ModelInferResponse:
    """The answer as a ModelInferResponse. An all-binary answer whose header was seen before
    (the same model, version and shapes, no id) is copied from the first one's parse."""
    split = len(body) if header_length is None else header_length
    head = body[:split]
    known = _ANSWERS.get(head)
    if known is not None:
        response = pb.ModelInferResponse()
        response.CopyFrom(known[0])
        contents = response.raw_output_contents
        at = split
        for size in known[1]:
            contents.append(body[at:at + size])
            at += size
        return response
    response = _decode_response(body, split)
    sizes = _binary_sizes(head)
    if sizes is not None:
        if len(_ANSWERS) >= _CACHED:
            _ANSWERS.clear()
        template = pb.ModelInferResponse()
        template.CopyFrom(response)
        del template.raw_output_contents[:]
        _ANSWERS[head] = (template, sizes)
    return response


def _binary_sizes(head: bytes) -> list[int] | None:
    """The binary size of each output when every output came as binary data and the answer has
    no id (an id is per request: not worth keeping); else None."""
    header = json.loads(head)
    if "id" in header:
        return None
    sizes = []
    for spec in header.get("outputs") or ():
        size = (spec.get("parameters") or {}).get("binary_data_size")
        if not isinstance(size, int):
            return None
        sizes.append(size)
    return sizes


def _decode_response(body: bytes, split: int) -> pb.ModelInferResponse:
    header = json.loads(body[:split])
    response = pb.ModelInferResponse(model_name=header.get("model_name", ""),
                                     model_version=str(header.get("model_version", "")), id=header.get("id", ""))
    for key, value in (header.get("parameters") or {}).items():
        set_param(response.parameters, key, value)
    at = split
    for spec in header.get("outputs") or ():
        tensor = response.outputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        parameters = spec.get("parameters")
        size = None
        if parameters:
            size = parameters.get("binary_data_size")
            for key, value in parameters.items():
                if key != "binary_data_size":
                    set_param(tensor.parameters, key, value)
        if size is None:
            response.raw_output_contents.append(_output_bytes(spec))
        else:
            response.raw_output_contents.append(body[at:at + size])
            at += size
    return response


def error_text(body: bytes) -> str:
    """The message of a Triton error answer (its JSON ``error``, else the body's start)."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")
